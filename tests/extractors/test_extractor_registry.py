"""The extractor registry: names, specs, weights choices."""

from __future__ import annotations

import pytest

from healnet_cli.core.errors import InputError
from healnet_cli.extractors import PRESETS, check_weights_choice, list_specs, load_extractor, spec_for
from healnet_cli.extractors.stain_texture import DIM, feature_names


def test_presets_listed_with_dims() -> None:
    specs = {s.name: s for s in list_specs()}
    assert list(specs) == ["resnet50-trunc", "vit-small", "uni", "conch", "stain-texture"]
    assert specs["resnet50-trunc"].dim == 1024 and specs["resnet50-trunc"].input_px == 224
    assert specs["uni"].weights == specs["conch"].weights == "file"
    assert specs["stain-texture"].dim == DIM == len(feature_names())


@pytest.mark.parametrize(
    ("name", "match"),
    [("resnet50trunc", "did you mean resnet50-trunc"), ("timm:resnet5O", "timm has no model"), ("", "unknown")],
)
def test_unknown_names(name: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        spec_for(name)


def test_timm_names_resolve() -> None:
    spec = spec_for("timm:test_vit")
    assert spec.kind == "timm" and spec.timm_name == "test_vit" and spec.dim is None


@pytest.mark.parametrize(
    ("name", "weights", "pretrained", "random_init", "match"),
    [
        ("resnet50-trunc", None, False, False, "needs weights"),
        ("resnet50-trunc", "w.pt", True, False, "conflict"),
        ("uni", None, True, False, "gated"),
        ("uni", None, False, False, r"--weights FILE \(gated"),
        ("stain-texture", "w.pt", False, False, "takes no weights"),
        ("stain-texture", None, False, True, "takes no weights"),
    ],
)
def test_weights_choice_errors(name, weights, pretrained, random_init, match) -> None:
    with pytest.raises(InputError, match=match):
        check_weights_choice(spec_for(name), weights, pretrained, random_init)


def test_random_init_is_explicit_and_deterministic() -> None:
    a = load_extractor("timm:test_resnet", random_init=True)
    b = load_extractor("timm:test_resnet", random_init=True)
    assert a.weights.key == "random-init:seed0" and a.provenance()["weights"] == {"source": "random-init", "seed": 0}
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert ka == kb and (va == vb).all()


def test_timm_transform_from_pretrained_config() -> None:
    ext = load_extractor("timm:test_vit", random_init=True)
    assert ext.dim == 64
    assert ext.transform.input_px == 160 and ext.transform.interpolation == "bicubic"
    assert ext.transform.mean == (0.5, 0.5, 0.5)


def test_presets_are_data_only() -> None:
    for spec in PRESETS.values():
        assert spec.name == spec.name.lower() and " " not in spec.name
