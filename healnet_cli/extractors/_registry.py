"""The extractor registry: a name → how to build the model, its eval transform, dimension and the
weights it needs. Presets are data; ``timm:<model>`` reaches any timm architecture."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Literal

from healnet_cli.core.errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
TIMM_PREFIX = "timm:"

WeightsPolicy = Literal["any", "file", "none"]


@dataclass(frozen=True)
class ExtractorSpec:
    """What an extractor name means.

    Attributes
    ----------
    name
        Registry name (lower-case kebab, or ``timm:<model>``).
    kind
        ``timm`` (a timm backbone, pooled), ``resnet-trunc`` (ResNet truncated after layer3) or
        ``stain-texture`` (numpy/scikit-image features, no weights).
    timm_name
        timm architecture, with the pretrained tag that ``--pretrained`` loads.
    timm_kwargs
        Extra ``timm.create_model`` arguments (e.g. ``init_values`` for UNI).
    dim, input_px
        Output dimension and input size (``None`` for ``timm:`` names until built).
    weights
        ``any``: ``--weights``, ``--pretrained`` or ``--random-init``; ``file``: gated weights, only
        ``--weights FILE`` (or ``--random-init`` for tests); ``none``: takes no weights.
    transform
        Fixed ``(mean, std, interpolation)`` overriding timm's pretrained config, or ``None`` to use it.
    precision
        ``amp``: autocast (bf16/fp16) allowed on CUDA under ``--precision auto``; ``fp32``: always fp32.
    ignore_prefixes
        Keys a full checkpoint may hold that the model does not use (classifier, dropped layers).
    """

    name: str
    kind: str
    description: str
    timm_name: str = ""
    timm_kwargs: dict[str, Any] = field(default_factory=dict)
    dim: int | None = None
    input_px: int | None = None
    weights: WeightsPolicy = "any"
    transform: tuple[tuple[float, ...], tuple[float, ...], str] | None = None
    precision: str = "amp"
    ignore_prefixes: tuple[str, ...] = ()
    weights_hint: str = ""


PRESETS: dict[str, ExtractorSpec] = {
    spec.name: spec
    for spec in (
        ExtractorSpec(
            name="resnet50-trunc",
            kind="resnet-trunc",
            description="ResNet50 (torchvision ImageNet weights) truncated after layer3, average pooled: CLAM/HEALNet",
            timm_name="resnet50.tv_in1k",
            dim=1024,
            input_px=224,
            transform=(IMAGENET_MEAN, IMAGENET_STD, "bilinear"),
            ignore_prefixes=("layer4.", "fc."),
        ),
        ExtractorSpec(
            name="vit-small",
            kind="timm",
            description="ViT-S/16 (timm augreg in21k→in1k), class token",
            timm_name="vit_small_patch16_224.augreg_in21k_ft_in1k",
            dim=384,
            input_px=224,
            ignore_prefixes=("head.",),
        ),
        ExtractorSpec(
            name="uni",
            kind="timm",
            description="UNI-style ViT-L/16 (MahmoodLab/UNI pytorch_model.bin), class token",
            timm_name="vit_large_patch16_224",
            timm_kwargs={"img_size": 224, "init_values": 1e-5, "dynamic_img_size": True},
            dim=1024,
            input_px=224,
            weights="file",
            transform=(IMAGENET_MEAN, IMAGENET_STD, "bilinear"),
            ignore_prefixes=("head.",),
            weights_hint="gated: request access to MahmoodLab/UNI on Hugging Face, download pytorch_model.bin",
        ),
        ExtractorSpec(
            name="conch",
            kind="timm",
            description="CONCH-style ViT-B/16 trunk at 448 px, OpenAI-CLIP normalisation (timm-layout state dict)",
            timm_name="vit_base_patch16_224",
            timm_kwargs={"img_size": 448, "dynamic_img_size": True},
            dim=768,
            input_px=448,
            weights="file",
            transform=(OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, "bicubic"),
            ignore_prefixes=("head.",),
            weights_hint="gated: request access to MahmoodLab/CONCH, convert the visual trunk to timm key names",
        ),
        ExtractorSpec(
            name="stain-texture",
            kind="stain-texture",
            description="offline: H&E/DAB colour-deconvolution stats, colour histograms, GLCM + LBP texture",
            dim=None,  # filled from stain_texture.DIM by spec_for
            input_px=128,
            transform=((), (), "bilinear"),
            weights="none",
            precision="fp32",
        ),
    )
}


def spec_for(name: str) -> ExtractorSpec:
    """The spec of a registry name (``timm:<model>`` accepted for any timm architecture).

    Raises
    ------
    InputError
        Unknown name (with the closest valid names) or unknown timm model.
    """
    if name in PRESETS:
        spec = PRESETS[name]
        if spec.kind == "stain-texture":
            from healnet_cli.extractors.stain_texture import DIM

            spec = ExtractorSpec(**{**spec.__dict__, "dim": DIM})
        return spec
    if name.startswith(TIMM_PREFIX):
        model = name[len(TIMM_PREFIX) :]
        _check_timm_name(model)
        return ExtractorSpec(name=name, kind="timm", description=f"timm model {model}, pooled", timm_name=model)
    close = difflib.get_close_matches(name, list(PRESETS), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise InputError(
        f"--extractor {name!r} is unknown{hint}; valid: {', '.join(PRESETS)} or timm:<model>; see `healnet extract --list`"
    )


def _check_timm_name(model: str) -> None:
    import timm

    arch = model.split(".", 1)[0]
    if timm.is_model(arch):
        return
    close = difflib.get_close_matches(arch, timm.list_models(), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise InputError(f"--extractor timm:{model}: timm has no model {arch!r}{hint}; see timm.list_models()")


def list_specs() -> list[ExtractorSpec]:
    """The presets in registry order (``timm:<model>`` is open-ended and not listed here)."""
    return [spec_for(name) for name in PRESETS]
