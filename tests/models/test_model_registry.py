"""Registry, config validation and checkpoint format."""

from __future__ import annotations

import pytest
import torch

from healnet_cli.models import (
    ModalitySpec,
    create_model,
    list_models,
    model_from_checkpoint,
    model_to_checkpoint,
)

SPECS = {"wsi": ModalitySpec("bag", 8), "rna": ModalitySpec("vector", 6)}


def test_registry_lists_every_model():
    assert list_models() == ["healnet", "ehpal", "abmil", "snn", "concat", "late", "coxnet", "cox-clinical"]


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="valid models: .*healnet"):
        create_model("perceiver", SPECS, 4)


@pytest.mark.parametrize("name", list_models())
def test_unknown_hparam_lists_valid_keys(name):
    with pytest.raises(ValueError, match=r"unknown hyperparameter\(s\) \['not_a_field'\].*valid keys"):
        create_model(name, SPECS, 4, not_a_field=1)


@pytest.mark.parametrize(
    ("name", "hparams", "match"),
    [
        ("healnet", {"omics_tokens": "pairs"}, "omics_tokens"),
        ("healnet", {"self_per_cross_attn": -1}, "self_per_cross_attn"),
        ("healnet", {"bag_positions": "grid"}, "bag_positions"),
        ("ehpal", {"widths": (12,)}, "widths"),
        ("snn", {"dropout": 1.5}, "dropout"),
    ],
)
def test_invalid_values_raise(name, hparams, match):
    with pytest.raises(ValueError, match=match):
        create_model(name, SPECS, 4, **hparams)


def test_baselines_require_their_modality_kind():
    with pytest.raises(ValueError, match="bag modality"):
        create_model("abmil", {"rna": ModalitySpec("vector", 6)}, 4)
    with pytest.raises(ValueError, match="vector modality"):
        create_model("snn", {"wsi": ModalitySpec("bag", 6)}, 4)
    with pytest.raises(ValueError, match="omics only"):
        create_model("coxnet", SPECS, 4)
    with pytest.raises(ValueError, match="takes the modalities clinical only"):
        create_model("cox-clinical", {"rna": SPECS["rna"]}, 4)
    with pytest.raises(ValueError, match="kind"):
        ModalitySpec("image", 3)


def _is_plain(obj) -> bool:
    if isinstance(obj, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(_is_plain(v) for v in obj)
    return obj is None or isinstance(obj, (str, int, float, bool, torch.Tensor))


@pytest.mark.parametrize("name", list_models())
def test_checkpoint_dict_is_plain_and_rebuilds(name):
    specs = {"rna": SPECS["rna"]} if name == "coxnet" else SPECS  # coxnet: omics only
    if name == "cox-clinical":
        specs = {"clinical": SPECS["rna"]}
    model = create_model(name, specs, 4)
    ckpt = model_to_checkpoint(model)
    assert set(ckpt) == {"name", "config", "state_dict"} and _is_plain(ckpt)
    assert ckpt["config"]["modalities"] == {k: {"kind": v.kind, "dim": v.dim} for k, v in specs.items()}
    rebuilt = model_from_checkpoint(ckpt)
    assert rebuilt.config == model.config
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), rebuilt.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(v1, v2)
    with pytest.raises(ValueError, match="lacks keys"):
        model_from_checkpoint({"name": name})
