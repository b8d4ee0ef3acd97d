"""The extractor registry: a name → how to build the model, its eval transform, output, precision,
dimension and where its weights come from. Presets are data (:mod:`healnet_cli.extractors.presets`);
``timm:<model>`` and ``hf-hub:<org>/<repo>`` reach any timm architecture, with ``--encoder-arg``."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from healnet_cli.core.errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
TIMM_PREFIX = "timm:"
HUB_PREFIX = "hf-hub:"
OUTPUTS = ("cls", "cls+mean", "pooled")
OUTPUT_ARG = "output"  # the --encoder-arg key that picks the output, not a model keyword

WeightsPolicy = Literal["any", "file", "none"]


@dataclass(frozen=True)
class ExtractorSpec:
    """What an extractor name means.

    Attributes
    ----------
    name
        Registry name (lower-case kebab), ``timm:<model>`` or ``hf-hub:<org>/<repo>``.
    kind
        ``timm`` (a timm model), ``resnet-trunc`` (ResNet truncated after layer3), ``conch-v1.5``
        (ViT-L/16 trunk + attentional pooler) or ``stain-texture`` (numpy features, no weights).
    timm_name, timm_kwargs
        timm architecture (``hf-hub:...`` for hub configs) and its ``create_model`` keywords.
    dim, input_px
        Output dimension and input size (``None`` for ``timm:``/``hf-hub:`` names until built).
    output
        ``cls`` (class token), ``cls+mean`` (class token ⊕ mean of the patch tokens, register
        tokens left out) or ``pooled`` (the model's own pooling / head).
    weights
        ``any``: ``--weights``, ``--pretrained`` or ``--random-init``; ``file``: only ``--weights FILE``
        (or ``--random-init``); ``none``: takes no weights.
    transform
        Fixed ``(mean, std, interpolation)`` overriding timm's pretrained config, or ``None`` to use it.
    crop_px
        Resize to this size, then centre-crop ``input_px`` (Prov-GigaPath's 256 → 224); ``None``: no crop.
    precision
        What ``--precision auto`` runs on CUDA: ``fp16``, ``bf16`` or ``fp32`` (the published one).
    amp
        Whether autocast may be used at all (False for numpy extractors).
    coarse_read
        Patches may be read from a coarser pyramid level that still holds ``input_px`` pixels
        (cheaper decode; for extractors defined at their input resolution, not at the patch's).
    layout
        The state-dict layout a weights file may come in: ``timm`` or ``hf-dinov2`` (converted on load).
    hub_repo, hub_files
        Where ``--pretrained`` downloads the weights (Hugging Face repo and candidate file names).
    gated
        The hub repo needs an accepted licence and a token (``huggingface-cli login``).
    train_mpp, licence, weights_hint
        µm/px the encoder was trained at (``None``: not a pathology model), licence note, where to get
        the weights.
    encoder_args
        ``--encoder-arg`` values given for ``timm:``/``hf-hub:`` names (part of the cache key).
    """

    name: str
    kind: str
    description: str
    timm_name: str = ""
    timm_kwargs: dict[str, Any] = field(default_factory=dict)
    dim: int | None = None
    input_px: int | None = None
    output: str = "pooled"
    weights: WeightsPolicy = "any"
    transform: tuple[tuple[float, ...], tuple[float, ...], str] | None = None
    crop_px: int | None = None
    precision: str = "bf16"
    amp: bool = True
    coarse_read: bool = False
    layout: str = "timm"
    ignore_prefixes: tuple[str, ...] = ()
    hub_repo: str = ""
    hub_files: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")
    gated: bool = False
    train_mpp: float | None = None
    licence: str = ""
    weights_hint: str = ""
    encoder_args: dict[str, Any] = field(default_factory=dict)

    @property
    def is_preset(self) -> bool:
        return not self.name.startswith((TIMM_PREFIX, HUB_PREFIX))


def spec_for(name: str, encoder_args: Sequence[str] | Mapping[str, Any] | None = None) -> ExtractorSpec:
    """The spec of a registry name, ``timm:<model>`` or ``hf-hub:<org>/<repo>``.

    Parameters
    ----------
    name
        Registry name.
    encoder_args
        ``key=value`` strings (or a parsed mapping) for ``timm:``/``hf-hub:`` names: model keywords,
        plus ``output=cls|cls+mean|pooled``.

    Raises
    ------
    InputError
        Unknown name (with the closest valid names), unknown timm model, malformed or misplaced
        ``--encoder-arg``.
    """
    from healnet_cli.extractors.presets import PRESETS

    args = parse_encoder_args(encoder_args) if not isinstance(encoder_args, Mapping) else dict(encoder_args)
    if name in PRESETS:
        if args:
            raise InputError(
                f"--encoder-arg is not accepted for the preset {name} (its architecture is fixed); "
                "use timm:<model> or hf-hub:<org>/<repo> with --encoder-arg to build a variant"
            )
        spec = PRESETS[name]
        if spec.kind == "stain-texture":
            from healnet_cli.extractors.stain_texture import DIM

            spec = replace(spec, dim=DIM)
        return spec
    if name.startswith((TIMM_PREFIX, HUB_PREFIX)):
        return _open_spec(name, args)
    close = difflib.get_close_matches(name, list(PRESETS), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise InputError(
        f"--extractor {name!r} is unknown{hint}; valid: {', '.join(PRESETS)}, timm:<model> or hf-hub:<org>/<repo>; "
        "see `healnet extract --list`"
    )


def _open_spec(name: str, args: dict[str, Any]) -> ExtractorSpec:
    output = str(args.pop(OUTPUT_ARG, "pooled"))
    if output not in OUTPUTS:
        raise InputError(f"--encoder-arg output={output}: must be one of {', '.join(OUTPUTS)}")
    if name.startswith(TIMM_PREFIX):
        model = name[len(TIMM_PREFIX) :]
        _check_timm_name(model)
        timm_name, what = model, f"timm model {model}"
    else:
        repo = name[len(HUB_PREFIX) :]
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise InputError(f"--extractor {name}: expected hf-hub:<org>/<repo>, e.g. hf-hub:paige-ai/Virchow2")
        timm_name, what = f"hf-hub:{repo}", f"timm model from the hub config of {repo}"
    return ExtractorSpec(
        name=name,
        kind="timm",
        description=f"{what}, {output}",
        timm_name=timm_name,
        timm_kwargs=dict(args),
        output=output,
        encoder_args={**args, **({OUTPUT_ARG: output} if output != "pooled" else {})},
    )


def parse_encoder_args(items: Sequence[str] | None) -> dict[str, Any]:
    """``["key=value", ...]`` → ``{key: value}``; values are JSON (numbers, true/false, null, lists)
    or else plain strings.

    Raises
    ------
    InputError
        An item without ``=``, an empty key, or a key given twice.
    """
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise InputError(
                f"--encoder-arg {item!r}: expected key=value with a Python keyword as key, e.g. init_values=1e-5"
            )
        if key in out:
            raise InputError(f"--encoder-arg {key} is given twice")
        out[key] = _value(text.strip())
    return out


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _check_timm_name(model: str) -> None:
    import timm

    arch = model.split(".", 1)[0]
    if timm.is_model(arch):
        return
    close = difflib.get_close_matches(arch, timm.list_models(), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise InputError(f"--extractor timm:{model}: timm has no model {arch!r}{hint}; see timm.list_models()")


def list_specs() -> list[ExtractorSpec]:
    """The presets in registry order (``timm:``/``hf-hub:`` names are open-ended and not listed here)."""
    from healnet_cli.extractors.presets import PRESETS

    return [spec_for(name) for name in PRESETS]
