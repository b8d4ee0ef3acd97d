"""Build an extractor from the registry: model + eval transform + dimension + weights provenance.

Weights are resolved and validated here, before any slide is opened: a missing, corrupt or
mismatched ``--weights`` file, or ``--pretrained`` without a reachable hub, is an
:class:`~healnet_cli.core.errors.InputError` (exit 2). Every weights source goes the same way: a
file (given, or fetched from the hub by ``--pretrained``) read without unpickling, converted from
its published layout, fitted strictly.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from healnet_cli.core.errors import InputError
from healnet_cli.extractors._registry import ExtractorSpec, spec_for
from healnet_cli.extractors.backbones import TruncatedResNet, build_backbone, output_dim, wrap_output
from healnet_cli.extractors.layouts import convert_state_dict
from healnet_cli.extractors.transform import EvalTransform, timm_transform
from healnet_cli.extractors.weights import (
    RANDOM_INIT_SEED,
    WeightsInfo,
    fetch_hub_weights,
    file_weights_info,
    fit_state_dict,
    read_state_dict,
)

__all__ = ["Extractor", "TruncatedResNet", "autocast_dtype", "check_weights_choice", "load_extractor"]
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class Extractor:
    """A ready-to-run extractor.

    Attributes
    ----------
    name, dim, transform, weights
        Registry name, output dimension, eval transform, weights provenance.
    amp, default_precision
        Whether autocast may be used, and the published precision ``--precision auto`` uses on CUDA.
    model
        The ``nn.Module`` (``None`` for numpy extractors).
    worker_fn
        For CPU extractors that run inside the DataLoader workers: ``uint8 [b, 3, s, s]`` →
        ``float32 [b, D]``. ``None`` for models, which run in the main process on ``device``.
    output, architecture, encoder_args
        What the model returns (``cls``, ``cls+mean``, ``pooled``), its timm architecture and the
        ``--encoder-arg`` values (recorded in provenance).
    coarse_read
        Whether patches may be read from a coarser pyramid level holding ``input_px`` pixels.
    """

    name: str
    dim: int
    transform: EvalTransform
    weights: WeightsInfo
    amp: bool = True
    default_precision: str = "bf16"
    model: nn.Module | None = None
    worker_fn: Callable[[torch.Tensor], torch.Tensor] | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    autocast_dtype: torch.dtype | None = None
    output: str = "pooled"
    architecture: str = ""
    encoder_args: dict[str, Any] = field(default_factory=dict)
    coarse_read: bool = False

    def prepare(self, device: torch.device, autocast: torch.dtype | None, *, compile: bool = False) -> None:
        """Move the model to ``device`` (eval, channels-last), set the autocast dtype, optionally compile."""
        self.device = device
        if self.model is None:
            self.autocast_dtype = None
            return
        self.autocast_dtype = autocast if self.amp else None
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed batch shapes: let cuDNN pick the fastest kernels
        model = self.model.eval().to(device)
        model = model.to(memory_format=torch.channels_last)
        if compile:
            model = torch.compile(model)  # type: ignore[assignment]
        self.model = model

    @property
    def precision(self) -> str:
        """``fp32``, ``bf16`` or ``fp16`` as run."""
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.autocast_dtype, "fp32")  # type: ignore[arg-type]

    @torch.inference_mode()
    def encode(self, images_u8: torch.Tensor) -> torch.Tensor:
        """``uint8 [b, 3, s, s]`` (on ``device``) → ``float32 [b, dim]`` (on ``device``)."""
        if self.model is None:
            if self.worker_fn is None:
                raise RuntimeError(f"extractor {self.name} has neither a model nor a worker function")
            return self.worker_fn(images_u8)
        x = self.transform.normalize(images_u8).contiguous(memory_format=torch.channels_last)
        if self.autocast_dtype is not None:
            with torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype):
                out = self.model(x)
        else:
            out = self.model(x)
        return out.float()

    def provenance(self) -> dict[str, Any]:
        """What the features file records about how its features were made."""
        out = {
            "extractor": self.name,
            "dim": self.dim,
            "weights": self.weights.as_dict(),
            "transform": self.transform.as_dict(),
            "precision": self.precision,
            "output": self.output,
            "architecture": self.architecture,
        }
        if self.encoder_args:
            out["encoder_args"] = dict(self.encoder_args)
        return out


def autocast_dtype(extractor: Extractor, requested: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype to run ``extractor`` with: ``--precision auto`` on CUDA gives the
    extractor's published precision (fp16, bf16 or fp32), on the CPU fp32; an explicit
    ``--precision`` is honoured (see :func:`healnet_cli.core.device.resolve_precision`)."""
    from healnet_cli.core.device import resolve_precision

    if not extractor.amp:
        resolve_precision(requested, device)  # still validate the option
        return None
    if (requested or "auto").strip().lower() == "auto" and device.type == "cuda":
        return _DTYPES.get(extractor.default_precision)
    return resolve_precision(requested, device)


def check_weights_choice(
    spec: ExtractorSpec, weights: str | os.PathLike[str] | None, pretrained: bool, random_init: bool
) -> None:
    """Exactly one weights source that the extractor accepts, else an InputError naming the fix."""
    flags = (("--weights", weights is not None), ("--pretrained", pretrained), ("--random-init", random_init))
    chosen = [flag for flag, on in flags if on]
    hint = f" ({spec.weights_hint})" if spec.weights_hint else ""
    if spec.weights == "none":
        if chosen:
            raise InputError(f"--extractor {spec.name} takes no weights; drop {', '.join(chosen)}")
        return
    if len(chosen) > 1:
        raise InputError(
            f"{' and '.join(chosen)} conflict; pass exactly one of --weights FILE, --pretrained, --random-init"
        )
    if not chosen:
        how = "--weights FILE"
        if spec.weights == "any":
            how += ", --pretrained (hub) or --random-init (testing only)"
        raise InputError(f"--extractor {spec.name} needs weights: pass {how}{hint}")
    if pretrained and spec.weights == "file":
        raise InputError(
            f"--pretrained is not available for {spec.name}: no hub file loads as is{hint}; pass --weights FILE"
        )


def load_extractor(
    name: str,
    *,
    weights: str | os.PathLike[str] | None = None,
    pretrained: bool = False,
    random_init: bool = False,
    encoder_args: Sequence[str] | Mapping[str, Any] | None = None,
) -> Extractor:
    """Build the extractor ``name`` with its weights (validated here, before any slide is read).

    Parameters
    ----------
    name
        A registry name (see ``healnet extract --list``), ``timm:<model>`` or ``hf-hub:<org>/<repo>``.
    weights, pretrained, random_init
        Exactly one for extractors with weights; none for ``stain-texture``.
    encoder_args
        ``key=value`` model keywords for ``timm:``/``hf-hub:`` names (``output=cls|cls+mean|pooled``).

    Raises
    ------
    InputError
        Unknown name, no/conflicting weights choice, unreadable or mismatched weights file,
        ``--pretrained`` without hub access, keywords the model does not take.
    """
    spec = spec_for(name, encoder_args)
    check_weights_choice(spec, weights, pretrained, random_init)
    if spec.kind == "stain-texture":
        return _stain_texture(spec)
    info: WeightsInfo | None = WeightsInfo(source="random-init", seed=RANDOM_INIT_SEED)
    state, path = None, None
    if weights is not None:
        path, info = weights, None
        state = read_state_dict(weights)  # fails fast on a missing/corrupt file, before building
    elif pretrained:
        path, info = fetch_hub_weights(spec.name, *_hub_source(spec))
        state = read_state_dict(path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        backbone, full = build_backbone(spec)
    if state is not None and path is not None:
        fit_weights(spec, backbone, full, state, path=path)
    if info is None:
        info = file_weights_info(path)  # type: ignore[arg-type]
    return Extractor(
        name=spec.name,
        dim=output_dim(spec, full),
        transform=_transform(spec, full),
        weights=info,
        amp=spec.amp,
        default_precision=spec.precision,
        model=wrap_output(spec, backbone),
        output=spec.output,
        architecture=str(getattr(full, "pretrained_cfg", {}).get("architecture") or spec.timm_name.split(".")[0]),
        encoder_args=dict(spec.encoder_args),
    )


def fit_weights(
    spec: ExtractorSpec,
    backbone: nn.Module,
    full: nn.Module,
    state: dict[str, torch.Tensor],
    *,
    path: str | os.PathLike[str],
) -> None:
    """Convert ``state`` from the spec's published layout and load it strictly into ``backbone``."""
    state = convert_state_dict(spec.layout, state, backbone.state_dict())
    arch = spec.timm_name.split(".")[0]
    fit_state_dict(backbone, state, path=path, arch=arch, ignore_prefixes=_ignored(spec, full))


def _hub_source(spec: ExtractorSpec) -> tuple[str, tuple[str, ...]]:
    """Hub repo and candidate files for ``--pretrained``: the preset's, else timm's pretrained tag."""
    if spec.hub_repo:
        return spec.hub_repo, spec.hub_files
    if spec.timm_name.startswith("hf-hub:"):
        from healnet_cli.extractors.weights import HUB_FILES

        return spec.timm_name[len("hf-hub:") :], HUB_FILES
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(spec.timm_name)
    repo = str(getattr(cfg, "hf_hub_id", "") or "")
    if not repo:
        raise InputError(
            f"--pretrained for {spec.name}: timm has no hub weights for {spec.timm_name}; pass --weights FILE"
        )
    filename = getattr(cfg, "hf_hub_filename", None)
    return repo, ((filename,) if filename else ("model.safetensors", "pytorch_model.bin"))


def _stain_texture(spec: ExtractorSpec) -> Extractor:
    from healnet_cli.extractors.stain_texture import DIM, stain_texture_tensor

    transform = EvalTransform(input_px=int(spec.input_px or 128), mean=None, std=None, interpolation="bilinear")
    return Extractor(
        name=spec.name,
        dim=DIM,
        transform=transform,
        weights=WeightsInfo(source="none"),
        amp=False,
        default_precision="fp32",
        worker_fn=stain_texture_tensor,  # module-level: picklable for spawn-started workers
        output="pooled",
        architecture="stain-texture",
        coarse_read=spec.coarse_read,
    )


def _ignored(spec: ExtractorSpec, full: nn.Module) -> tuple[str, ...]:
    classifier = getattr(full, "pretrained_cfg", {}).get("classifier") or ()
    names = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    return (*spec.ignore_prefixes, *(f"{n}." for n in names))


def _transform(spec: ExtractorSpec, full: nn.Module) -> EvalTransform:
    import timm

    config = timm.data.resolve_model_data_config(full)
    base = timm_transform(config)
    if spec.transform is None:
        return base
    mean, std, interpolation = spec.transform
    return EvalTransform(
        input_px=int(spec.input_px or base.input_px),
        mean=tuple(mean),  # type: ignore[arg-type]
        std=tuple(std),  # type: ignore[arg-type]
        interpolation=interpolation,
        crop_px=spec.crop_px,
    )
