"""The extractor registry: names, specs, weights choices."""

from __future__ import annotations

import pytest
import torch

from healnet_cli.core.errors import InputError
from healnet_cli.extractors import PRESETS, check_weights_choice, list_specs, load_extractor, spec_for
from healnet_cli.extractors.stain_texture import DIM, feature_names


def test_presets_listed_with_dims() -> None:
    specs = {s.name: s for s in list_specs()}
    required = ["uni", "uni2-h", "conch-v1.5", "virchow2", "h-optimus-0", "h-optimus-1", "gigapath", "phikon-v2"]
    assert set(required + ["resnet50-trunc", "stain-texture"]) <= set(specs)
    assert specs["resnet50-trunc"].dim == 1024 and specs["resnet50-trunc"].input_px == 224
    assert specs["conch"].weights == "file" and all(specs[n].weights == "any" and specs[n].hub_repo for n in required)
    assert all(specs[n].train_mpp == 0.5 and specs[n].licence for n in required)
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


def test_encoder_args_parsed_and_recorded() -> None:
    spec = spec_for(
        "timm:test_vit", ["init_values=1e-5", "mlp_layer=SwiGLUPacked", "no_embed_class=true", "output=cls+mean"]
    )
    assert spec.timm_kwargs == {"init_values": 1e-5, "mlp_layer": "SwiGLUPacked", "no_embed_class": True}
    assert spec.output == "cls+mean" and spec.encoder_args["output"] == "cls+mean"
    hub = spec_for("hf-hub:paige-ai/Virchow2", ["reg_tokens=4"])
    assert hub.timm_name == "hf-hub:paige-ai/Virchow2" and hub.timm_kwargs == {"reg_tokens": 4}


@pytest.mark.parametrize(
    ("name", "args", "match"),
    [
        ("uni", ["depth=2"], "not accepted for the preset uni"),
        ("timm:test_vit", ["depth"], "expected key=value"),
        ("timm:test_vit", ["depth=1", "depth=2"], "given twice"),
        ("timm:test_vit", ["output=mean"], "output=mean: must be one of"),
        ("hf-hub:justarepo", [], "expected hf-hub:<org>/<repo>"),
    ],
)
def test_encoder_arg_errors(name: str, args: list[str], match: str) -> None:
    with pytest.raises(InputError, match=match):
        spec_for(name, args)


def test_encoder_args_build_the_variant() -> None:
    """--encoder-arg reaches timm.create_model (layer classes by name) and output=cls+mean doubles the dim."""
    ext = load_extractor(
        "timm:test_vit", random_init=True, encoder_args=["mlp_layer=SwiGLUPacked", "act_layer=silu", "output=cls+mean"]
    )
    mlp = ext.model.model.blocks[0].mlp
    assert type(mlp).__name__ == "GluMlp" and isinstance(mlp.act, torch.nn.SiLU)  # timm.layers.SwiGLUPacked
    assert ext.dim == 128 and ext.provenance()["encoder_args"]["output"] == "cls+mean"
    with pytest.raises(InputError, match="does not accept these keywords"):
        load_extractor("timm:test_resnet", random_init=True, encoder_args=["no_such_kwarg=1"])


@pytest.mark.parametrize(
    ("name", "weights", "pretrained", "random_init", "match"),
    [
        ("resnet50-trunc", None, False, False, "needs weights"),
        ("resnet50-trunc", "w.pt", True, False, "conflict"),
        ("conch", None, True, False, "not available for conch"),
        (
            "uni",
            None,
            False,
            False,
            r"--weights FILE, --pretrained .*accept the terms at huggingface.co/MahmoodLab/UNI",
        ),
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
