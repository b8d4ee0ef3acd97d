"""Clinical covariates: age, sex, stage and grade by default (found by name, encoded), centre
columns and any other column only on request, every column kept or dropped listed with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from healnet_cli.artifacts.omics import list_modalities, read_modality
from healnet_cli.cli import build_app
from healnet_cli.core.errors import InputError
from healnet_cli.data.preprocess import fit_omics_preprocess
from healnet_cli.stages.omics.clinical import encode_grade, encode_sex, encode_stage, parse_request

runner = CliRunner()


def _table(path: Path, n: int = 8) -> Path:
    """A TCGA-style clinical + omics table with every kind of clinical column."""
    stages = [
        "Stage IIIA",
        "Stage IV",
        "[Not Available]",
        "Stage I",
        "Stage IIB",
        "Stage IIIC",
        "Stage II",
        "Stage IVB",
    ]
    grades = ["G1", "G3", "GX", "G2", "High Grade", "Low Grade", "G3", "G4"]
    frame = pd.DataFrame({
        "bcr_patient_barcode": [f"TCGA-AA-{i:04d}" for i in range(n)],
        "age_at_initial_pathologic_diagnosis": [40 + 3 * i for i in range(n)],
        "gender": ["MALE", "FEMALE"] * (n // 2),
        "ajcc_pathologic_tumor_stage": stages[:n],
        "histological_grade": grades[:n],
        "tissue_source_site": ["AB", "CD", "EF", "AB"] * (n // 4),
        "race": ["WHITE", "ASIAN"] * (n // 2),
        "ajcc_pathologic_t": ["T2a", "T3", "T1", "T4"] * (n // 4),
        "OS.time": [100.0 + i for i in range(n)],
        "OS": [1, 0] * (n // 2),
        "G1_rnaseq": np.linspace(0, 1, n),
        "G2_rnaseq": np.linspace(1, 0, n) ** 2,
    })  # fmt: skip
    frame.to_csv(path, sep="\t", index=False)
    return path


def _omics(*args: str):
    return runner.invoke(build_app(), ["omics", *args])


def _report(work: Path) -> dict:
    return json.loads((work / "omics" / "report.json").read_text())


def test_default_keeps_age_sex_stage_grade_encoded(tmp_path: Path) -> None:
    work = tmp_path / "w"
    result = _omics(str(_table(tmp_path / "t.tsv")), "-w", str(work))
    assert result.exit_code == 0, result.output
    clinical, meta = read_modality(work / "omics" / "clinical.parquet")
    assert list(clinical.columns) == ["age", "is_female", "stage", "grade"]
    assert clinical["age"].tolist() == [40 + 3 * i for i in range(8)]
    assert clinical["is_female"].tolist() == [0, 1] * 4
    assert (
        clinical["stage"].tolist()[:2] == [3, 4]
        and np.isnan(clinical["stage"].iloc[2])
        and clinical["stage"].tolist()[3:] == [1, 2, 3, 2, 4]
    )
    assert (
        clinical["grade"].tolist()[:2] == [1, 3]
        and np.isnan(clinical["grade"].iloc[2])
        and clinical["grade"].tolist()[3:] == [2, 3, 1, 3, 4]
    )
    selection = meta["clinical_columns"][0]
    assert [k["role"] for k in selection["kept"]] == ["age", "sex", "stage", "grade"]
    reasons = {d["column"]: d["reason"] for d in selection["dropped"]}
    assert set(reasons) == {"tissue_source_site", "race", "ajcc_pathologic_t"}
    assert reasons["tissue_source_site"].startswith("tissue-source-site (centre) indicator: a batch confounder")
    assert "--clinical-columns age,sex,stage,grade,race" in reasons["race"]
    assert _report(work)["clinical_columns"][0]["roles_not_found"] == []
    manifest = json.loads((work / "omics" / "clinical.manifest.json").read_text())["meta"]["clinical_columns"]
    assert manifest["kept"][0] == "age_at_initial_pathologic_diagnosis" and "tissue_source_site" in manifest["dropped"]
    assert "clinical columns of t.tsv: kept age_at_initial_pathologic_diagnosis → age" in " ".join(
        result.output.split()
    )
    assert "tissue_source_site (tissue-source-site (centre) indicator)" in " ".join(result.output.split())
    # TCGA's "[Not Available]" and "GX" are missing values, not text to warn about
    assert _report(work)["inputs"][0]["modalities"]["clinical"]["non_numeric"]["cells"] == 0


def test_centre_and_other_columns_only_on_request(tmp_path: Path) -> None:
    table = _table(tmp_path / "t.tsv")
    work = tmp_path / "w"
    assert _omics(str(table), "-w", str(work), "--clinical-columns", "age,site,race").exit_code == 0
    clinical, meta = read_modality(work / "omics" / "clinical.parquet")
    assert list(clinical.columns) == ["age", "tissue_source_site=AB", "tissue_source_site=CD", "tissue_source_site=EF",
                                      "race=ASIAN", "race=WHITE"]  # fmt: skip
    dropped = {d["column"] for d in meta["clinical_columns"][0]["dropped"]}
    assert {"gender", "ajcc_pathologic_tumor_stage", "histological_grade"} <= dropped
    every = _omics(str(table), "-w", str(tmp_path / "all"), "--clinical-columns", "all")
    assert every.exit_code == 0, every.output
    columns = read_modality(tmp_path / "all" / "omics" / "clinical.parquet")[0].columns
    assert {
        "age",
        "is_female",
        "stage",
        "grade",
        "race=WHITE",
        "tissue_source_site=AB",
        "ajcc_pathologic_t=T2a",
    } <= set(columns)
    assert _omics(str(table), "-w", str(tmp_path / "none"), "--clinical-columns", "none").exit_code == 0
    assert list_modalities(tmp_path / "none" / "omics") == ["rna"]


def test_changed_clinical_columns_recompute_the_clinical_table(tmp_path: Path) -> None:
    table = _table(tmp_path / "t.tsv")
    work = tmp_path / "w"
    assert _omics(str(table), "-w", str(work)).exit_code == 0
    assert _omics(str(table), "-w", str(work), "--clinical-columns", "age").exit_code == 0
    assert list(read_modality(work / "omics" / "clinical.parquet")[0].columns) == ["age"]


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("age,nope", r"no clinical column 'nope' in .*t\.tsv \(clinical columns: .*race"),
        ("all,age", "stand alone"),
        (",", "empty"),
    ],
)
def test_bad_clinical_columns_exit_2(tmp_path: Path, value: str, match: str) -> None:
    result = _omics(str(_table(tmp_path / "t.tsv")), "-w", str(tmp_path / "w"), "--clinical-columns", value)
    assert result.exit_code == 2
    import re

    assert re.search(match, " ".join(result.output.split())), result.output
    assert not (tmp_path / "w" / "omics" / "clinical.parquet").exists()


def test_age_in_days_becomes_years_and_pattern_names_need_encodable_values(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    pd.DataFrame({
        "case_id": ["P1", "P2", "P3", "P4"], "Diagnosis Age (days)": [21915, 25567.5, 18262.5, None],
        "Sex": ["F", "M", "m", "female"], "stage_comment": ["see notes", "n/a", "pending review", "unclear"],
        "tumour_grade_2tier": ["low", "high", "high", "low"], "x_rnaseq": [1.0, 2.0, 3.0, 4.0],
    }).to_csv(path, index=False)  # fmt: skip
    work = tmp_path / "w"
    assert _omics(str(path), "-w", str(work)).exit_code == 0
    clinical, meta = read_modality(work / "omics" / "clinical.parquet")
    assert list(clinical.columns) == ["age", "is_female", "grade"]
    assert clinical["age"].tolist()[:3] == pytest.approx([60.0, 70.0, 50.0], abs=0.01)
    assert clinical["is_female"].tolist() == [1, 0, 0, 1] and clinical["grade"].tolist() == [1, 3, 3, 1]
    selection = meta["clinical_columns"][0]
    assert "days converted to years" in selection["kept"][0]["note"]
    reasons = {d["column"]: d["reason"] for d in selection["dropped"]}
    assert reasons["stage_comment"].startswith("its name looks like stage, but only 0% of its values are")
    named = _omics(str(path), "-w", str(tmp_path / "n"), "--clinical-columns", "age,stage_comment")
    assert named.exit_code == 0, named.output
    assert list(read_modality(tmp_path / "n" / "omics" / "clinical.parquet")[0].columns) == [
        "age", "stage_comment=pending review", "stage_comment=see notes", "stage_comment=unclear"]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "stage"),
    [
        ("Stage IIIB", 3),
        ("stage iv", 4),
        ("IIA", 2),
        ("Stage I", 1),
        ("Stage 0is", 0),
        ("2A", 2),
        ("Stage IVC", 4),
        ("Stage IS", 1),
        ("Stage IIIC1", 3),
        ("T2a", None),
        ("I/II NOS", None),
        ("Stage V", None),
    ],
)
def test_stage_encoding(text: str, stage: int | None) -> None:
    assert encode_stage(text) == (None if stage is None else float(stage))


@pytest.mark.parametrize(
    ("text", "grade"),
    [
        ("G1", 1),
        ("g2", 2),
        ("Grade 3", 3),
        ("High Grade", 3),
        ("low", 1),
        ("Moderately differentiated", 2),
        ("G4", 4),
        ("GB", None),
    ],
)
def test_grade_encoding(text: str, grade: int | None) -> None:
    assert encode_grade(text) == (None if grade is None else float(grade))


def test_sex_encoding() -> None:
    assert [encode_sex(v, male_column=False) for v in ("FEMALE", "male", "1", "0", "2")] == [1.0, 0.0, 1.0, 0.0, None]
    assert encode_sex("1", male_column=True) == 0.0
    with pytest.raises(InputError, match="stand alone"):
        parse_request("none,site")


def test_clinical_covariates_are_standardised_on_training_patients_only() -> None:
    """The per-fold preprocessing of `healnet train` z-scores age (years) and binary sex with the
    training patients' statistics: a test patient's extreme age changes nothing."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.normal(65, 10, 40), "is_female": (np.arange(40) % 3 == 0).astype(float)})
    train, test = frame.iloc[:30], frame.iloc[30:].copy()
    state = fit_omics_preprocess(train)
    z = state.transform(train)
    assert state.kept == ["age", "is_female"]
    assert np.allclose(z.mean(axis=0), 0, atol=0.05) and np.allclose(z.std(axis=0), 1, atol=0.1)
    test.iloc[0, 0] = 400.0  # winsorised at the training ages' upper quantile
    assert state.transform(test)[0, 0] == pytest.approx(float(z[:, 0].max()), abs=1e-4)
    assert fit_omics_preprocess(pd.concat([train, test])).to_dict() != state.to_dict()


def test_a_requested_role_the_table_lacks_warns(tmp_path: Path) -> None:
    path = tmp_path / "c_all_clean.csv"
    pd.DataFrame({"case_id": ["P1", "P2", "P3"], "age": [50, 60, 70], "g_rnaseq": [1.0, 2.0, 3.0]}).to_csv(
        path, index=False
    )
    result = _omics(str(path), "-w", str(tmp_path / "w"), "--clinical-columns", "age,stage")
    assert result.exit_code == 0
    assert "--clinical-columns asked for stage, which the table has no column for" in " ".join(result.output.split())
    for default in ([], ["--clinical-columns", "all"]):  # the default set and all: roles looked for, no warning
        assert "asked for" not in _omics(str(path), "-w", str(tmp_path / "d"), *default, "--force").output
