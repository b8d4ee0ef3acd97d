"""Cohort assembly and batching: patterns, bag concatenation, modality dropout, bag subsampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from healnet_cli.core.errors import InputError
from healnet_cli.data.batching import build_table, collate, drop_modalities, make_batches
from healnet_cli.data.cohort import load_cohort
from healnet_cli.data.preprocess import fit_omics_preprocess


def test_cohort_patterns_and_require_all(workspace: Path) -> None:
    cohort = load_cohort(workspace, ["wsi", "rna", "cnv"])
    assert len(cohort.patients) == 40 and cohort.extractor == "toy"
    counts = cohort.pattern_counts()
    assert sum(counts.values()) == 40 and "wsi+rna+cnv" in counts
    full = load_cohort(workspace, ["wsi", "rna", "cnv"], require_all=True)
    assert len(full.patients) == counts["wsi+rna+cnv"]


def test_bags_concatenate_slides_per_case(workspace: Path) -> None:
    cohort = load_cohort(workspace, ["wsi"])
    pid = next(p for p, refs in cohort.slides.items() if len(refs) == 2)
    feats, coords, parts = cohort.load_bag(pid)
    assert [s for s, _ in parts] == sorted(s for s, _ in parts)
    assert len(feats) == len(coords) == sum(len(c) for _, c in parts)


@pytest.mark.parametrize(
    ("mods", "kwargs", "match"),
    [
        (["rna", "protein"], {}, "unknown modality protein; available: wsi, cnv, rna"),
        (["wsi"], {"extractor": "nope"}, "--extractor nope"),
        ([], {}, "--modalities is empty"),
    ],
)
def test_cohort_bad_inputs(workspace: Path, mods, kwargs, match) -> None:
    with pytest.raises(InputError, match=match):
        load_cohort(workspace, mods, **kwargs)


def test_no_labels(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no labels"):
        load_cohort(tmp_path, ["rna"])


def test_modality_dropout_never_removes_every_modality() -> None:
    rng = np.random.default_rng(0)
    present = {m: rng.random(500) < 0.7 for m in ("wsi", "rna", "cnv")}
    before = np.stack(list(present.values()), 1)
    for p in (0.3, 0.9, 0.999):
        out = drop_modalities(present, p, rng)
        after = np.stack([out[m] for m in present], 1)
        assert np.all(after <= before)  # never adds a modality
        assert np.all(after.any(1) == before.any(1))  # never empties a sample
    assert np.array_equal(np.stack(list(drop_modalities(present, 0.0, rng).values()), 1), before)


def test_batches_cover_rows_once_and_bucket_by_length() -> None:
    lengths = np.arange(100)[::-1].copy()
    batches = make_batches(lengths, 8, np.random.default_rng(0), bucket_batches=100)
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(100))
    spans = [np.ptp(lengths[b]) for b in batches if len(b) == 8]
    assert max(spans) <= 7  # sorted buckets: neighbours in length share a batch


def test_collate_pads_masks_and_subsamples_only_with_rng(workspace: Path) -> None:
    cohort = load_cohort(workspace, ["wsi", "rna"])
    pre = {"rna": fit_omics_preprocess(cohort.omics["rna"])}
    table = build_table(cohort, cohort.patients, pre)
    rows = np.flatnonzero(table.present["wsi"])[:4]
    full = collate(table, rows)
    lengths = table.lengths()[rows]
    assert full["wsi"].token_mask.sum(1).tolist() == lengths.tolist()
    assert full["wsi"].data.shape[1] == lengths.max()
    sub = collate(table, rows, max_patches=3, rng=np.random.default_rng(0))
    assert sub["wsi"].token_mask.sum(1).tolist() == np.minimum(lengths, 3).tolist()
    no_rng = collate(table, rows, max_patches=3)  # evaluation: whole bags even with a cap
    assert torch.equal(no_rng["wsi"].token_mask, full["wsi"].token_mask)
