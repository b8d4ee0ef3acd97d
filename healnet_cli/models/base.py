"""Base class and config helpers shared by every survival model."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from healnet_cli.models.batch import Batch, ModalitySpec, ModelOutput, ResolvedModality, resolve_modality

__all__ = ["SurvivalModel", "build_config", "check_choice"]


def build_config(config_cls: type, hparams: dict[str, Any]) -> Any:
    """Build a frozen config dataclass from keyword hyperparameters.

    Raises
    ------
    ValueError
        If a key is not a field of ``config_cls``; the message lists the valid keys.
    """
    valid = [f.name for f in dataclasses.fields(config_cls)]
    unknown = sorted(set(hparams) - set(valid))
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {unknown} for {config_cls.__name__}; valid keys: {sorted(valid)}")
    return config_cls(**hparams)


def check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    """Raise ValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain-dict view of a config dataclass (tuples become lists)."""
    out = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        out[field.name] = list(value) if isinstance(value, tuple) else value
    return out


class SurvivalModel(nn.Module):
    """Common contract: fixed modalities, ``forward(batch) -> ModelOutput``.

    Subclasses set ``name`` and ``config_cls`` and implement ``_forward``.
    """

    name: ClassVar[str] = ""
    config_cls: ClassVar[type] = object

    def __init__(self, modalities: dict[str, ModalitySpec], n_bins: int, config: Any) -> None:
        super().__init__()
        if not modalities:
            raise ValueError("a model needs at least one modality")
        if int(n_bins) < 1:
            raise ValueError(f"n_bins must be >= 1, got {n_bins!r}")
        self.modalities = {k: v if isinstance(v, ModalitySpec) else ModalitySpec(**v) for k, v in modalities.items()}
        self.n_bins = int(n_bins)
        self.config = config

    def resolve(self, batch: Batch) -> tuple[dict[str, ResolvedModality | None], int, torch.device]:
        """Validate a batch; return per-modality resolved inputs, batch size and device."""
        unknown = sorted(set(batch) - set(self.modalities))
        if unknown:
            raise ValueError(f"batch has unknown modalities {unknown}; model has {list(self.modalities)}")
        if not batch:
            raise ValueError("batch is empty: it needs at least one modality key to infer the batch size")
        first = next(iter(batch.values()))
        batch_size = int(first.present.reshape(-1).shape[0])
        device = first.data.device
        resolved = {
            name: resolve_modality(name, spec, batch.get(name), batch_size) for name, spec in self.modalities.items()
        }
        return resolved, batch_size, device

    def forward(self, batch: Batch, *, return_weights: bool = False) -> ModelOutput:
        """Compute hazard logits ``[b, n_bins]`` for a batch."""
        resolved, batch_size, device = self.resolve(batch)
        return self._forward(resolved, batch_size, device, return_weights)

    def _forward(
        self,
        inputs: dict[str, ResolvedModality | None],
        batch_size: int,
        device: torch.device,
        return_weights: bool,
    ) -> ModelOutput:
        raise NotImplementedError
