"""Splits: parsing splits folders, generated patient-level folds, inner validation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from healnet_cli.core.errors import InputError
from healnet_cli.data.splits import folds_from_frame, inner_validation, make_folds, read_splits_dir, splits_frame


def _write(folder: Path, k: int, train: list[str], val: list[str]) -> None:
    n = max(len(train), len(val))
    frame = pd.DataFrame({"train": train + [None] * (n - len(train)), "val": val + [None] * (n - len(val))})
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / f"splits_{k}.csv")


def test_read_splits_pads_blanks_drops_and_reports(tmp_path: Path) -> None:
    cohort = ["A", "B", "C", "D", "E"]
    _write(tmp_path, 0, ["A", "B", "C", "X9"], ["D"])
    _write(tmp_path, 1, ["D", "E"], ["A", "B", "C"])
    folds, report = read_splits_dir(tmp_path, cohort)
    assert folds[0].train == ["A", "B", "C"] and folds[0].test == ["D"]
    assert report.dropped[0] == ["E"] and report.unknown[0] == ["X9"]
    assert folds[1].test == ["A", "B", "C"] and report.dropped[1] == []


@pytest.mark.parametrize(
    ("files", "match"),
    [
        ({}, "no splits_K.csv"),
        ({"splits_0.csv": "a,b\n1,2\n"}, "no column 'train'"),
        ({"splits_0.csv": ",train,val\n0,A,A\n"}, "both train and val"),
        ({"splits_1.csv": ",train,val\n0,A,B\n"}, "not 0..0"),
        ({"splits_0.csv": ",train,val\n0,Z,A\n"}, "no cohort patient in the 'train'"),
    ],
)
def test_bad_splits_files(tmp_path: Path, files: dict[str, str], match: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(InputError, match=match):
        read_splits_dir(tmp_path, ["A", "B"])


def test_generated_folds_are_patient_level_and_stratified() -> None:
    ids = [f"P{i}" for i in range(50)]
    labels = pd.DataFrame({"time": range(1, 51), "event": [i % 3 == 0 for i in range(50)]}, index=ids)
    folds = make_folds(labels, 5, seed=1)
    tests = [p for f in folds for p in f.test]
    assert sorted(tests) == sorted(ids)  # every patient tested exactly once
    for f in folds:
        assert not set(f.train) & set(f.test)
        assert abs(labels.loc[f.test, "event"].mean() - labels["event"].mean()) < 0.1
    assert [f.test for f in make_folds(labels, 5, seed=1)] == [f.test for f in folds]


def test_inner_validation_is_a_subset_of_training() -> None:
    ids = [f"P{i}" for i in range(60)]
    labels = pd.DataFrame({"time": range(1, 61), "event": [i % 2 == 0 for i in range(60)]}, index=ids)
    folds = make_folds(labels, 3, seed=0)
    for f in folds:
        f.val = inner_validation(f.train, labels["event"], 0.2, seed=f.index)
        assert set(f.val) <= set(f.train) and not set(f.val) & set(f.test)
        assert len(f.val) == round(0.2 * len(f.train))
        assert set(f.fit) | set(f.val) == set(f.train)
    again = folds_from_frame(splits_frame(folds))
    assert [(f.train, f.test, f.val) for f in again] == [(f.train, f.test, f.val) for f in folds]
