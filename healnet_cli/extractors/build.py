"""Build an extractor from the registry: model + eval transform + dimension + weights provenance.

Weights are resolved and validated here, before any slide is opened: a missing, corrupt or
mismatched ``--weights`` file, or ``--pretrained`` without a reachable hub, is an
:class:`~healnet_cli.core.errors.InputError` (exit 2).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from healnet_cli.core.errors import InputError
from healnet_cli.extractors._registry import ExtractorSpec, spec_for
from healnet_cli.extractors.transform import EvalTransform, timm_transform
from healnet_cli.extractors.weights import (
    RANDOM_INIT_SEED,
    WeightsInfo,
    cached_hub_file,
    file_weights_info,
    fit_state_dict,
    hub_offline,
    hub_reachable,
    pretrained_unavailable,
    read_state_dict,
)


@dataclass
class Extractor:
    """A ready-to-run extractor.

    Attributes
    ----------
    name, dim, transform, weights, precision_policy
        Registry name, output dimension, eval transform, weights provenance, ``amp`` or ``fp32``.
    model
        The ``nn.Module`` (``None`` for numpy extractors).
    worker_fn
        For CPU extractors that run inside the DataLoader workers: ``uint8 [b, 3, s, s]`` →
        ``float32 [b, D]``. ``None`` for models, which run in the main process on ``device``.
    """

    name: str
    dim: int
    transform: EvalTransform
    weights: WeightsInfo
    precision_policy: str = "amp"
    model: nn.Module | None = None
    worker_fn: Callable[[torch.Tensor], torch.Tensor] | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    autocast_dtype: torch.dtype | None = None

    def prepare(self, device: torch.device, autocast_dtype: torch.dtype | None, *, compile: bool = False) -> None:
        """Move the model to ``device`` (eval, channels-last), set the autocast dtype, optionally compile."""
        self.device = device
        if self.model is None:
            self.autocast_dtype = None
            return
        self.autocast_dtype = autocast_dtype if self.precision_policy == "amp" else None
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
            assert self.worker_fn is not None
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
        return {
            "extractor": self.name,
            "dim": self.dim,
            "weights": self.weights.as_dict(),
            "transform": self.transform.as_dict(),
            "precision": self.precision,
        }


class TruncatedResNet(nn.Module):
    """A timm ResNet up to ``layer3``, global-average pooled (``[b, 3, h, w]`` → ``[b, c3]``).

    Submodule names are the ResNet's, so full ResNet state dicts load (``layer4``/``fc`` ignored).
    """

    def __init__(self, resnet: nn.Module):
        super().__init__()
        self.conv1, self.bn1, self.act1, self.maxpool = resnet.conv1, resnet.bn1, resnet.act1, resnet.maxpool
        self.layer1, self.layer2, self.layer3 = resnet.layer1, resnet.layer2, resnet.layer3
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.pool(x).flatten(1)


def check_weights_choice(
    spec: ExtractorSpec, weights: str | os.PathLike[str] | None, pretrained: bool, random_init: bool
) -> None:
    """Exactly one weights source that the extractor accepts, else an InputError naming the fix."""
    flags = (("--weights", weights is not None), ("--pretrained", pretrained), ("--random-init", random_init))
    chosen = [flag for flag, on in flags if on]
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
        hint = f" ({spec.weights_hint})" if spec.weights_hint else ""
        raise InputError(f"--extractor {spec.name} needs weights: pass {how}{hint}")
    if pretrained and spec.weights == "file":
        hint = f" ({spec.weights_hint})" if spec.weights_hint else ""
        raise InputError(f"--pretrained is not available for {spec.name}: its weights are gated{hint}; pass --weights FILE")


def load_extractor(
    name: str,
    *,
    weights: str | os.PathLike[str] | None = None,
    pretrained: bool = False,
    random_init: bool = False,
) -> Extractor:
    """Build the extractor ``name`` with its weights (validated here, before any slide is read).

    Parameters
    ----------
    name
        A registry name (see ``healnet extract --list``) or ``timm:<model>``.
    weights, pretrained, random_init
        Exactly one for extractors with weights; none for ``stain-texture``.

    Raises
    ------
    InputError
        Unknown name, no/conflicting weights choice, unreadable or mismatched weights file,
        ``--pretrained`` without hub access.
    """
    spec = spec_for(name)
    check_weights_choice(spec, weights, pretrained, random_init)
    if spec.kind == "stain-texture":
        return _stain_texture(spec)
    if weights is not None:
        state = read_state_dict(weights)  # fails fast on a missing/corrupt file, before building
        model, full = _build_timm(spec, pretrained=False)
        arch = spec.timm_name.split(".")[0]
        fit_state_dict(model, state, path=weights, arch=arch, ignore_prefixes=_ignored(spec, full))
        info = file_weights_info(weights)
    elif pretrained:
        model, full, info = _build_pretrained(spec)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            model, full = _build_timm(spec, pretrained=False)
        info = WeightsInfo(source="random-init", seed=RANDOM_INIT_SEED)
    transform = _transform(spec, full)
    dim = spec.dim if spec.dim is not None else int(getattr(full, "num_features"))
    return Extractor(
        name=spec.name, dim=dim, transform=transform, weights=info, precision_policy=spec.precision, model=model
    )


def _stain_texture(spec: ExtractorSpec) -> Extractor:
    from healnet_cli.extractors.stain_texture import DIM, stain_texture_tensor

    transform = EvalTransform(input_px=int(spec.input_px or 128), mean=None, std=None, interpolation="bilinear")
    return Extractor(
        name=spec.name,
        dim=DIM,
        transform=transform,
        weights=WeightsInfo(source="none"),
        precision_policy="fp32",
        worker_fn=stain_texture_tensor,  # module-level: picklable for spawn-started workers
    )


def _build_timm(spec: ExtractorSpec, *, pretrained: bool, file: Path | None = None) -> tuple[nn.Module, nn.Module]:
    """(the module to run, the full timm model it came from)."""
    import timm

    kwargs: dict[str, Any] = {"num_classes": 0, **spec.timm_kwargs}
    if file is not None:
        kwargs["pretrained_cfg_overlay"] = {"file": str(file)}
    full = timm.create_model(spec.timm_name, pretrained=pretrained, **kwargs)
    model = TruncatedResNet(full) if spec.kind == "resnet-trunc" else full
    return model, full


def _build_pretrained(spec: ExtractorSpec) -> tuple[nn.Module, nn.Module, WeightsInfo]:
    from timm.models import get_pretrained_cfg

    from healnet_cli.core.fingerprint import sha256_file

    cfg = get_pretrained_cfg(spec.timm_name)
    hf_hub_id = str(getattr(cfg, "hf_hub_id", "") or "")
    tag = hf_hub_id or spec.timm_name
    cached = cached_hub_file(hf_hub_id) if hf_hub_id else None
    if cached is not None:
        model, full = _build_timm(spec, pretrained=True, file=cached)
        return model, full, WeightsInfo(source="hub", tag=tag, file=cached.name, sha256=sha256_file(cached))
    if hub_offline():
        reason = f"HF_HUB_OFFLINE is set and {tag} is not in the local hub cache"
        raise pretrained_unavailable(spec.name, reason, hf_hub_id)
    if not hub_reachable():
        reason = f"the model hub is unreachable (no network) and {tag} is not cached"
        raise pretrained_unavailable(spec.name, reason, hf_hub_id)
    try:
        model, full = _build_timm(spec, pretrained=True)
    except Exception as exc:  # noqa: BLE001 - hub errors come in many types
        reason = f"downloading {tag} failed ({type(exc).__name__}: {exc})"
        raise pretrained_unavailable(spec.name, reason, hf_hub_id) from exc
    cached = cached_hub_file(hf_hub_id) if hf_hub_id else None
    sha = sha256_file(cached) if cached is not None else ""
    return model, full, WeightsInfo(source="hub", tag=tag, sha256=sha)


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
    )
