"""Suffix splitting, barcodes and the sample-type filter, duplicate rows, coercion, dropping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omics_factory import wide_frame

from healnet_cli.artifacts.omics import read_labels, read_modality
from healnet_cli.core.console import Console
from healnet_cli.core.errors import InputError
from healnet_cli.core.workspace import Workspace
from healnet_cli.stages.omics import OmicsConfig, TableSpec, run_omics
from healnet_cli.stages.omics.clean import collapse_patients, drop_uninformative, log1p_frame
from healnet_cli.stages.omics.config import parse_groups, parse_sample_types
from healnet_cli.stages.omics.identifiers import filter_samples, sample_type


def _run(tmp_path: Path, *paths: Path | str, **options) -> tuple[Workspace, dict]:
    import json

    specs = tuple(TableSpec.parse(str(p)) for p in paths)
    workspace = Workspace.at(tmp_path / "w")
    status = run_omics(OmicsConfig(tables=specs, **options), workspace=workspace, console=Console(quiet=True))
    report = (
        json.loads((workspace.omics_dir / "report.json").read_text())
        if (workspace.omics_dir / "report.json").exists()
        else {}
    )
    return workspace, {"status": status, **report}


def test_wide_table_splits_by_suffix(tmp_path: Path, wide_csv: Path) -> None:
    ws, report = _run(tmp_path, wide_csv)
    rna, meta = read_modality(ws.omics_dir / "rna.parquet")
    assert list(rna.columns) == ["GENE1", "GENE2"]  # FLAT_rnaseq is constant: dropped
    assert rna.dtypes.unique().tolist() == [np.float32] and rna.index.name == "patient_id"
    assert meta["dropped_features"]["constant"]["examples"] == ["FLAT_rnaseq".removesuffix("_rnaseq")]
    assert list(read_modality(ws.omics_dir / "cnv.parquet")[0].columns) == ["GENE1", "GENE2"]
    assert list(read_modality(ws.omics_dir / "mut.parquet")[0].columns) == ["TP53", "KRAS"]
    clinical, _ = read_modality(ws.omics_dir / "clinical.parquet")
    assert list(clinical.columns) == ["age", "is_female"]  # site (centre) and oncotree_code: not covariates by default
    ws2, _ = _run(tmp_path / "site", wide_csv, clinical_columns="age,sex,site,oncotree_code")
    clinical, _ = read_modality(ws2.omics_dir / "clinical.parquet")
    assert list(clinical.columns) == ["age", "site=AA", "site=BB", "is_female"]  # oncotree_code constant: dropped
    labels, lmeta = read_labels(ws.omics_dir / "labels.parquet")
    assert len(labels) == 6 and labels["event"].sum() == 4 and lmeta["time_unit"] == "months"
    assert not {"slide_id", "train", "survival_months", "censorship"} & set(clinical.columns)
    assert report["status"]["exit_code"] == 0


def test_modality_and_groups_layouts(tmp_path: Path) -> None:
    path = tmp_path / "expr.tsv"
    pd.DataFrame({"sample_id": ["A", "B", "C"], "g1": [1, 2, 3], "g2": [3, 1, 2], "p_1": [0, 1, 0]}).to_csv(
        path, sep="\t", index=False
    )
    ws, _ = _run(tmp_path, path, modality="rna")
    assert read_modality(ws.omics_dir / "rna.parquet")[0].shape == (3, 3)
    ws2, report = _run(tmp_path / "g", path, groups=parse_groups(["genes=^g", "prot=^p_"]))
    assert list(read_modality(ws2.omics_dir / "genes.parquet")[0].columns) == ["g1", "g2"]
    assert list(read_modality(ws2.omics_dir / "prot.parquet")[0].columns) == ["p_1"]
    ws3, _ = _run(tmp_path / "n", f"protein={path}")
    assert read_modality(ws3.omics_dir / "protein.parquet")[0].shape == (3, 3)


def test_no_suffix_without_modality_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    pd.DataFrame({"case_id": ["A"], "g1": [1.0]}).to_csv(path, index=False)
    with pytest.raises(InputError, match=r"plain.csv: no column ends with a modality suffix.*--modality NAME"):
        _run(tmp_path, path)


@pytest.mark.parametrize(
    ("text", "ok"),
    [("rna=_rnaseq$", True), ("rna", False), ("rna=(", False), ("labels=x", False), ("a b=x", False)],
)
def test_group_option_validation(text: str, ok: bool) -> None:
    if ok:
        assert parse_groups([text]) == (("rna", "_rnaseq$"),)
    else:
        with pytest.raises(InputError, match="--group"):
            parse_groups([text])


def test_barcodes_and_sample_type_filter() -> None:
    ids = ["TCGA-AA-0001-01A-11R-A1", "TCGA-AA-0001-11A", "TCGA.AA.0002.01", "TCGA-AA-0003", "P7"]
    assert [sample_type(i) for i in ids] == ["01", "11", "01", None, None]
    result = filter_samples(ids, parse_sample_types("01"))
    assert result.keep.tolist() == [True, False, True, True, True]
    assert result.patient_ids[:3] == ["TCGA-AA-0001", "TCGA-AA-0001", "TCGA-AA-0002"]
    assert result.seen == {"01": 2, "11": 1} and result.dropped == 1
    assert filter_samples(ids, parse_sample_types("all")).keep.all()
    with pytest.raises(InputError, match="--sample-type"):
        parse_sample_types("tumour")


def test_transposed_table_with_sample_barcodes(tmp_path: Path) -> None:
    path = tmp_path / "expr.tsv.gz"
    frame = pd.DataFrame(
        {
            "gene": ["G1", "G2", "G3"],
            "TCGA-AA-0001-01A": [1, 2, 3],
            "TCGA-AA-0001-11A": [9, 9, 9],
            "TCGA-AA-0002-01A": [4, 5, 7],
        }
    )
    frame.to_csv(path, sep="\t", index=False)
    ws, report = _run(tmp_path, path, modality="rna")
    rna, _ = read_modality(ws.omics_dir / "rna.parquet")
    assert rna.index.tolist() == ["TCGA-AA-0001", "TCGA-AA-0002"]
    assert rna.loc["TCGA-AA-0001"].tolist() == [1, 2, 3]  # the normal sample (11A) was filtered out
    assert report["inputs"][0]["sample_type_filter"]["rows_dropped"] == 1
    ws2, _ = _run(tmp_path / "all", path, modality="rna", sample_types=None)
    assert read_modality(ws2.omics_dir / "rna.parquet")[0].loc["TCGA-AA-0001"].tolist() == [
        5,
        5.5,
        6,
    ]  # mean of 01A and 11A


def test_duplicate_rows_identical_and_conflicting() -> None:
    frame = pd.DataFrame(
        {
            "cont": [1.0, 1.0, 2.0, 4.0, 7.0],
            "mut": [0.0, 0.0, 1.0, 0.0, 1.0],
            "gap": [np.nan, np.nan, np.nan, 3.0, 1.0],
        },
        index=["P1", "P1", "P2", "P2", "P3"],
    ).astype(np.float32)
    out, stats = collapse_patients(frame)
    assert out.index.tolist() == ["P1", "P2", "P3"]
    assert out.loc["P1"].tolist()[:2] == [1.0, 0.0] and np.isnan(out.loc["P1", "gap"])  # identical rows kept once
    assert out.loc["P2"].tolist() == [3.0, 1.0, 3.0]  # mean, max for binary, mean ignoring missing
    assert (stats.identical, stats.aggregated, stats.examples_aggregated) == (1, 1, ["P2"])


def test_wide_table_slides_collapse_and_report(tmp_path: Path) -> None:
    frame = wide_frame(3, slides_per_patient=2)
    frame.loc[1, "GENE1_rnaseq"] = frame.loc[0, "GENE1_rnaseq"] + 2.0  # patient 0's second slide disagrees
    path = tmp_path / "t_all_clean.csv"
    frame.to_csv(path)
    ws, report = _run(tmp_path, path)
    rna, _ = read_modality(ws.omics_dir / "rna.parquet")
    assert rna.loc["TCGA-AA-0000", "GENE1"] == pytest.approx(frame.loc[0, "GENE1_rnaseq"] + 1.0)
    dup = report["inputs"][0]["modalities"]["rna"]["duplicates"]
    assert (dup["rows"], dup["patients"], dup["identical_rows_kept_once"], dup["conflicting_rows_aggregated"]) == (
        6,
        3,
        2,
        1,
    )
    assert "conflicting rows aggregated" in report["status"]["warnings"][0]["warning"]


def test_text_in_numeric_columns_is_coerced_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("case_id,g1_rnaseq,g2_rnaseq,age\nP1,1.0,2,61\nP2,oops,3,sixty\nP3,2.5,NA,70\nP4,4,5,55\n")
    ws, report = _run(tmp_path, path)
    rna, meta = read_modality(ws.omics_dir / "rna.parquet")
    assert np.isnan(rna.loc["P2", "g1"]) and np.isnan(rna.loc["P3", "g2"])
    assert meta["missing_fraction"] == {"g1": 0.25, "g2": 0.25}
    coerced = report["inputs"][0]["modalities"]["rna"]["non_numeric"]
    assert coerced["cells"] == 1 and coerced["examples"] == ["g1_rnaseq='oops'"]
    assert report["inputs"][0]["modalities"]["clinical"]["non_numeric"]["examples"] == ["age='sixty'"]
    assert "non-numeric cell" in report["status"]["warnings"][0]["warning"]


def test_drop_and_log1p() -> None:
    frame = pd.DataFrame(
        {"a": [1.0, 2.0], "b": [np.nan, np.nan], "c": [5.0, 5.0], "d": [np.nan, 3.0]}, dtype=np.float32
    )
    kept, dropped = drop_uninformative(frame)
    assert list(kept.columns) == ["a"] and dropped.all_missing == ["b"] and dropped.constant == ["c", "d"]
    assert log1p_frame(kept)["a"].tolist() == pytest.approx(np.log1p([1.0, 2.0]).tolist())
    with pytest.raises(ValueError, match="negative values"):
        log1p_frame(pd.DataFrame({"z": [-1.0, 1.0]}))


def test_log1p_failure_is_a_per_item_failure(tmp_path: Path, wide_csv: Path) -> None:
    _, report = _run(tmp_path, wide_csv, log1p=True)
    failed = {f["item"]: f["reason"] for f in report["status"]["failed"]}
    assert "rna" in failed and "negative values" in failed["rna"] and "mut" not in failed
    assert report["status"]["exit_code"] == 3


def test_parquet_with_a_patient_index_and_several_tables_merge(tmp_path: Path) -> None:
    first = pd.DataFrame(
        {"g1": [1.0, 2.0], "g2": [0.5, 0.7]}, index=pd.Index(["TCGA-AA-0001", "TCGA-AA-0002"], name="patient_id")
    )
    first.to_parquet(tmp_path / "a.parquet")
    second = pd.DataFrame({"patient_id": ["TCGA-AA-0002", "TCGA-AA-0003"], "g1": [4.0, 5.0], "g3": [1.0, 2.0]})
    second.to_csv(tmp_path / "b.csv", index=False)
    ws, report = _run(tmp_path, tmp_path / "a.parquet", tmp_path / "b.csv", modality="rna")
    rna, meta = read_modality(ws.omics_dir / "rna.parquet")
    assert rna.index.tolist() == ["TCGA-AA-0001", "TCGA-AA-0002", "TCGA-AA-0003"]
    assert list(rna.columns) == ["g1", "g2", "g3"]
    assert rna.loc["TCGA-AA-0002", "g1"] == 3.0  # the two tables disagree: mean
    assert report["modalities"]["rna"]["merged_tables"]["conflicting_rows_aggregated"] == 1
    assert [s["path"] for s in meta["sources"]] == [str(tmp_path / "a.parquet"), str(tmp_path / "b.csv")]


def test_transposed_groups_and_log1p(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("gene,S1,S2,S3\nG1,0,3,7\nG2,1,1,2\nP_1,5,0,0\nG1,9,9,9\n")  # a duplicated feature name
    ws, report = _run(
        tmp_path, path, orientation="features-by-samples", groups=parse_groups(["genes=^G", "prot=^P_"]), log1p=True
    )
    genes, meta = read_modality(ws.omics_dir / "genes.parquet")
    assert genes.index.tolist() == ["S1", "S2", "S3"] and list(genes.columns) == ["G1", "G2"]
    assert genes["G1"].tolist() == pytest.approx(np.log1p([0, 3, 7]).tolist()) and meta["log1p"] is True
    assert report["inputs"][0]["duplicate_feature_names_kept_first"]["examples"] == ["G1"]
    assert read_modality(ws.omics_dir / "prot.parquet")[0].shape == (3, 1)


def test_infinite_values_become_missing(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("case_id,g1,g2\nP1,inf,1\nP2,2,-inf\nP3,3,4\n")
    ws, report = _run(tmp_path, path, modality="rna")
    rna, _ = read_modality(ws.omics_dir / "rna.parquet")
    assert np.isnan(rna.loc["P1", "g1"]) and np.isnan(rna.loc["P2", "g2"])
    assert report["inputs"][0]["modalities"]["rna"]["non_numeric"]["non_finite_to_missing"] == 2
