"""`healnet omics` end to end: exit codes, caching, --force, --json, real data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omics_factory import wide_frame
from typer.testing import CliRunner

from healnet_cli.artifacts.omics import list_modalities, read_labels, read_modality
from healnet_cli.cli import build_app

runner = CliRunner()


def _omics(*args: str):
    return runner.invoke(build_app(), ["omics", *args])


def test_help_lists_the_labels_subcommand() -> None:
    result = _omics("--help")
    assert result.exit_code == 0 and "labels" in result.output and "--sample-type" in result.output


def test_happy_path_rerun_skips_and_force_recomputes(tmp_path: Path, wide_csv: Path) -> None:
    work = tmp_path / "w"
    first = _omics(str(wide_csv), "-w", str(work))
    assert first.exit_code == 0, first.output
    omics_dir = work / "omics"
    assert list_modalities(omics_dir) == ["clinical", "cnv", "mut", "rna"]
    assert (omics_dir / "labels.parquet").is_file() and (omics_dir / "config.yaml").is_file()
    assert json.loads((omics_dir / "report.json").read_text())["labels"]["events"] == 4
    mtime = (omics_dir / "rna.parquet").stat().st_mtime_ns
    again = _omics("-w", str(work), str(wide_csv), "--json")  # options before the table work too
    summary = json.loads(again.stdout)
    assert again.exit_code == 0 and summary["counts"] == {"done": 0, "skipped": 5, "failed": 0}
    assert (omics_dir / "rna.parquet").stat().st_mtime_ns == mtime
    forced = _omics(str(wide_csv), "-w", str(work), "--force", "--json")
    assert json.loads(forced.stdout)["counts"]["done"] == 5
    changed = _omics(str(wide_csv), "-w", str(work), "--max-levels", "1", "--json")  # new parameters: recomputed
    assert json.loads(changed.stdout)["counts"]["done"] == 5
    clinical, _ = read_modality(omics_dir / "clinical.parquet")
    assert not any(c.startswith("site=") for c in clinical.columns)


def test_edited_table_is_recomputed(tmp_path: Path) -> None:
    path = tmp_path / "t_all_clean.csv"
    wide_frame(4).to_csv(path)
    work = tmp_path / "w"
    assert _omics(str(path), "-w", str(work)).exit_code == 0
    wide_frame(5).to_csv(path)
    result = _omics(str(path), "-w", str(work), "--json")
    assert json.loads(result.stdout)["counts"]["done"] == 5
    assert len(read_labels(work / "omics" / "labels.parquet")[0]) == 5


@pytest.mark.parametrize(
    ("text", "args", "match"),
    [
        ("case_id,g1_rnaseq,g1_rnaseq\nP1,1,2\n", [], "duplicate column names 'g1_rnaseq'"),
        ("", [], "empty file"),
        ("case_id,g1_rnaseq\nP1,1\n", ["--id-col", "patient"], "no identifier column 'patient'"),
        ("x,g1\nA,1\n", ["--modality", "rna"], "cannot tell whether samples are rows or columns"),
        ("case_id,g1\nA,1\n", ["--orientation", "sideways"], "--orientation 'sideways'"),
        ("case_id,g1\nA,1\n", ["--modality", "labels"], "--modality 'labels' is not allowed"),
    ],
)
def test_malformed_input_exits_2_with_one_line(tmp_path: Path, text: str, args: list[str], match: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    result = _omics(str(path), "-w", str(tmp_path / "w"), *args)
    assert result.exit_code == 2
    assert match in result.output and result.output.count("error:") == 1
    assert not (tmp_path / "w" / "omics" / "rna.parquet").exists()


def test_partial_failure_exits_3_and_writes_the_rest(tmp_path: Path, wide_csv: Path) -> None:
    result = _omics(str(wide_csv), "-w", str(tmp_path / "w"), "--log1p", "--json")
    assert result.exit_code == 3
    failed = {f["item"] for f in json.loads(result.stdout)["failed"]}
    assert failed == {"rna", "cnv"} and "negative values" in result.stderr
    assert list_modalities(tmp_path / "w" / "omics") == ["clinical", "mut"]


def test_missing_table_and_no_table(tmp_path: Path) -> None:
    result = _omics(str(tmp_path / "nope.csv"), "-w", str(tmp_path / "w"))
    assert result.exit_code == 2 and "nope.csv: table not found" in result.output
    assert _omics().exit_code == 2


def test_config_file_section(tmp_path: Path, wide_csv: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("omics:\n  max-levels: 1\n")
    result = _omics("--config", str(cfg), str(wide_csv), "-w", str(tmp_path / "w"))
    assert result.exit_code == 0, result.output
    assert "max_levels: config" in (tmp_path / "w" / "omics" / "config.yaml").read_text()


@pytest.mark.real_data
def test_real_blca(shared_data: Path, tmp_path: Path) -> None:
    table = shared_data / "tcga" / "blca" / "tcga_blca_all_clean.csv.zip"
    work = tmp_path / "w"
    result = _omics(str(table), "-w", str(work))
    assert result.exit_code == 0, result.output
    shapes = {m: read_modality(work / "omics" / f"{m}.parquet")[0].shape for m in ("rna", "cnv", "mut")}
    assert shapes == {"rna": (373, 1554), "cnv": (373, 256), "mut": (373, 371)}
    labels, meta = read_labels(work / "omics" / "labels.parquet")
    assert len(labels) == 373 and int(labels["event"].sum()) == 169 and meta["time_unit"] == "months"
    clinical, _ = read_modality(work / "omics" / "clinical.parquet")
    assert list(clinical.columns) == ["age", "is_female"] and len(clinical) == 373  # not 33 centre one-hots + age + sex
    assert clinical["age"].between(30, 95).all() and set(clinical["is_female"].unique()) == {0.0, 1.0}
    selection = json.loads((work / "omics" / "report.json").read_text())["clinical_columns"][0]
    assert [(d["column"], d["reason"].split(":")[0]) for d in selection["dropped"]] == [
        ("site", "tissue-source-site (centre) indicator"),
        (
            "oncotree_code",
            "not a patient covariate of the default set (age, sex, stage, grade); ask for it with --clinical-columns "
            "age,sex,stage,grade,oncotree_code",
        ),
    ]
    assert selection["roles_not_found"] == ["stage", "grade"]
    cohort = runner.invoke(build_app(), ["cohort", "-w", str(work), "--json"])
    assert cohort.exit_code == 0 and json.loads(cohort.stdout)["labels"]["events"] == 169


def test_ragged_rows_exit_2_before_any_write(tmp_path: Path) -> None:
    path = tmp_path / "r_all_clean.csv"
    path.write_text("case_id,g1_rnaseq,g2_rnaseq\nP1,1,2\nP2,1,2,3\n")
    result = _omics(str(path), "-w", str(tmp_path / "w"))
    assert result.exit_code == 2 and "r_all_clean.csv: malformed table" in result.output
    assert list_modalities(tmp_path / "w" / "omics") == []
