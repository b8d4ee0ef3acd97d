"""Build the module an extractor spec names (no weights yet): timm models, the truncated ResNet,
the CONCH v1.5 tower, and the output wrapper.

Everything here also works under ``with torch.device("meta")``, which is how the tests check the
large presets' architectures without allocating them.
"""

from __future__ import annotations

from typing import Any, cast

from torch import nn

from healnet_cli.core.errors import InputError
from healnet_cli.extractors._registry import HUB_PREFIX, ExtractorSpec

_ACTIVATIONS = {"silu": "SiLU", "gelu": "GELU", "relu": "ReLU", "swish": "SiLU", "gelu_tanh": "GELU"}


class TruncatedResNet(nn.Module):
    """A timm ResNet up to ``layer3``, global-average pooled (``[b, 3, h, w]`` → ``[b, c3]``).

    Submodule names are the ResNet's, so full ResNet state dicts load (``layer4``/``fc`` ignored).
    """

    def __init__(self, resnet: nn.Module):
        super().__init__()
        self.conv1, self.bn1, self.act1, self.maxpool = resnet.conv1, resnet.bn1, resnet.act1, resnet.maxpool
        self.layer1, self.layer2, self.layer3 = resnet.layer1, resnet.layer2, resnet.layer3
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):  # noqa: ANN001, ANN201 - torch.Tensor in and out
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.pool(x).flatten(1)


def build_backbone(spec: ExtractorSpec) -> tuple[nn.Module, nn.Module]:
    """``(module the weights are fitted to, the timm model it came from)`` for a model spec.

    Raises
    ------
    InputError
        An ``--encoder-arg`` the model does not accept, or an ``hf-hub:`` config that is not in the
        local hub cache while offline.
    """
    import timm

    arch, kwargs = spec.timm_name, {"num_classes": 0, **resolve_layer_args(spec.timm_kwargs)}
    if arch.startswith(HUB_PREFIX):
        from healnet_cli.extractors.weights import hub_config

        config = hub_config(spec.name, arch[len(HUB_PREFIX) :])
        arch = str(config["architecture"])
        kwargs = {**resolve_layer_args(dict(config.get("model_args") or {})), **kwargs}
        kwargs["pretrained_cfg"] = {**(config.get("pretrained_cfg") or {}), "architecture": arch}
    try:
        full = timm.create_model(arch, pretrained=False, **kwargs)
    except TypeError as exc:
        args = ", ".join(f"{k}={v}" for k, v in spec.encoder_args.items()) or "none"
        raise InputError(
            f"--extractor {spec.name}: {arch} does not accept these keywords ({exc}); --encoder-arg given: {args}"
        ) from exc
    if spec.kind == "resnet-trunc":
        return TruncatedResNet(full), full
    if spec.kind == "conch-v1.5":
        from healnet_cli.extractors.encoders import ConchV15

        tower = ConchV15(full)
        return tower, full
    return full, full


def wrap_output(spec: ExtractorSpec, backbone: nn.Module) -> nn.Module:
    """The backbone with the spec's output (class token, class ⊕ mean patch token, or pooled)."""
    if spec.output == "pooled" or spec.kind != "timm":
        return backbone
    from healnet_cli.extractors.encoders import TokenOutput

    return TokenOutput(backbone, spec.output, name=spec.name)


def output_dim(spec: ExtractorSpec, full: nn.Module) -> int:
    """The feature dimension: the preset's, else the model's (doubled for ``cls+mean``)."""
    if spec.dim is not None:
        return spec.dim
    width = int(cast(Any, full).num_features)  # timm models have num_features; nn.Module does not
    return 2 * width if spec.output == "cls+mean" else width


def resolve_layer_args(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Layer keywords given by name → the classes timm expects: ``mlp_layer=SwiGLUPacked`` (any
    ``timm.layers`` layer), ``act_layer=silu`` (``torch.nn.SiLU``); other values unchanged."""
    import timm.layers
    import torch

    out = dict(kwargs)
    for key, value in kwargs.items():
        if not key.endswith("_layer") or not isinstance(value, str):
            continue
        if key == "act_layer" and value.lower() in _ACTIVATIONS:
            out[key] = getattr(torch.nn, _ACTIVATIONS[value.lower()])
        elif callable(getattr(timm.layers, value, None)):  # a class or a partial (SwiGLUPacked)
            out[key] = getattr(timm.layers, value)
        elif isinstance(getattr(torch.nn, value, None), type):
            out[key] = getattr(torch.nn, value)
    return out
