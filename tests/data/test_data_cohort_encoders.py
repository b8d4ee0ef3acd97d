"""A features folder must hold one encoder with one set of weights: load_cohort refuses a mix."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import factories

from healnet_cli.artifacts.features import read_provenance, write_features
from healnet_cli.core.errors import InputError
from healnet_cli.data.cohort import load_cohort


def _rewrite(path: Path, **provenance: object) -> None:
    meta = {**read_provenance(path), **provenance}
    write_features(path, torch.zeros(3, factories.WSI_DIM), torch.zeros(3, 2, dtype=torch.int64), meta)


def test_same_encoder_and_weights_load(workspace: Path) -> None:
    cohort = load_cohort(workspace, ["wsi", "rna"])
    assert cohort.extractor == "toy" and cohort.wsi_dim == factories.WSI_DIM


@pytest.mark.parametrize(
    ("changes", "shown"),
    [
        ({"weights": {"source": "file", "file": "b.bin", "sha256": "b" * 64}}, "toy sha256:bbbbbbbbbbbb…"),
        ({"weights": {"source": "random-init", "seed": 0}}, "toy random-init:seed0"),
        (
            {"extractor": "uni", "weights": {"source": "imported", "tool": "trident", "encoder": "uni_v1"}},
            "uni imported:trident:uni_v1",
        ),
    ],
)
def test_mixed_encoders_or_weights_are_refused(workspace: Path, changes: dict, shown: str) -> None:
    odd = sorted((workspace / "features" / "toy").glob("*.safetensors"))[3]
    _rewrite(odd, **changes)  # same dimension, other encoder/weights
    with pytest.raises(InputError, match="different encoders or weights are mixed") as info:
        load_cohort(workspace, ["wsi", "rna"])
    assert shown in str(info.value) and odd.stem in str(info.value) and "--name" in str(info.value)
