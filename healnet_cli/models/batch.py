"""Data containers shared by every model: batch inputs, modality specs and outputs.

Shapes use einops letters: ``b`` batch, ``n`` tokens (patches), ``d`` bag feature
dimension, ``f`` omics features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

__all__ = ["Batch", "ModalityInput", "ModalitySpec", "ModelOutput", "known_all", "resolve_modality"]


@dataclass
class ModalityInput:
    """One modality of a batch.

    Parameters
    ----------
    data : torch.Tensor
        Bags ``[b, n, d]`` float, or vectors ``[b, f]`` float.
    present : torch.Tensor
        ``[b]`` bool, True where the sample has this modality.
    token_mask : torch.Tensor or None
        Bags only: ``[b, n]`` bool, True marks a real (non-padding) token.
    coords : torch.Tensor or None
        Bags only: ``[b, n, 2]`` float, level-0 pixel coordinates of the patches.
    """

    data: torch.Tensor
    present: torch.Tensor
    token_mask: torch.Tensor | None = None
    coords: torch.Tensor | None = None


Batch = dict[str, ModalityInput]


@dataclass(frozen=True)
class ModalitySpec:
    """Static description of a modality, fixed when a model is built.

    Parameters
    ----------
    kind : {"bag", "vector"}
        ``"bag"`` for token sets (WSI patch features), ``"vector"`` for omics.
    dim : int
        Feature dimension: ``d`` for bags, ``f`` for vectors.
    """

    kind: Literal["bag", "vector"]
    dim: int

    def __post_init__(self) -> None:
        if self.kind not in ("bag", "vector"):
            raise ValueError(f"ModalitySpec.kind must be 'bag' or 'vector', got {self.kind!r}")
        if int(self.dim) < 1:
            raise ValueError(f"ModalitySpec.dim must be >= 1, got {self.dim!r}")


@dataclass
class ModelOutput:
    """Model output.

    Parameters
    ----------
    logits : torch.Tensor
        ``[b, n_bins]`` discrete-time hazard logits.
    weights : dict of str to torch.Tensor, or None
        Attention or gating weights, only when ``return_weights=True``.
    """

    logits: torch.Tensor
    weights: dict[str, torch.Tensor] | None = None


@dataclass
class ResolvedModality:
    """A validated modality with every optional field filled in (internal)."""

    data: torch.Tensor
    present: torch.Tensor  # [b] bool; False also for bags with no valid token
    token_mask: torch.Tensor | None  # bags: [b, n] bool; vectors: None
    coords: torch.Tensor | None


def known_all(flags: torch.Tensor) -> bool:
    """True when every entry of the bool tensor ``flags`` is True and finding out is free.

    That is in eager mode on the CPU. On an accelerator (reading the answer would wait for the
    device) and under ``torch.compile`` (it would break the graph) the answer is False, and callers
    keep their masked path, which is always correct; the shortcut only saves work.
    """
    if torch.compiler.is_compiling() or flags.device.type != "cpu":
        return False
    return bool(flags.all())


def _check_bag(name: str, spec: ModalitySpec, item: ModalityInput, batch_size: int) -> None:
    data = item.data
    if data.dim() != 3 or data.shape[0] != batch_size or data.shape[2] != spec.dim:
        raise ValueError(
            f"modality {name!r} is a bag: expected data [b={batch_size}, n, d={spec.dim}], got {tuple(data.shape)}"
        )
    if item.token_mask is not None and tuple(item.token_mask.shape) != tuple(data.shape[:2]):
        raise ValueError(
            f"modality {name!r}: token_mask must be [b, n]={tuple(data.shape[:2])}, got {tuple(item.token_mask.shape)}"
        )
    if item.coords is not None and tuple(item.coords.shape) != (*data.shape[:2], 2):
        raise ValueError(
            f"modality {name!r}: coords must be [b, n, 2]={(*data.shape[:2], 2)}, got {tuple(item.coords.shape)}"
        )


def resolve_modality(
    name: str, spec: ModalitySpec, item: ModalityInput | None, batch_size: int
) -> ResolvedModality | None:
    """Validate one modality of a batch and fill in defaults.

    Returns None when the modality is missing from the batch. A modality absent for every sample
    is returned as such (models gate it per sample; deciding it here would need the data). A bag
    sample whose token mask has no True entry counts as absent.

    Raises
    ------
    ValueError
        When shapes do not match the modality spec.
    """
    if item is None:
        return None
    present = item.present.to(torch.bool).reshape(-1)
    if present.shape[0] != batch_size:
        raise ValueError(f"modality {name!r}: present must be [b={batch_size}], got {tuple(item.present.shape)}")
    if spec.kind == "bag":
        _check_bag(name, spec, item, batch_size)
        mask = item.token_mask
        if mask is None:
            mask = torch.ones(item.data.shape[:2], dtype=torch.bool, device=item.data.device)
        mask = mask.to(torch.bool)
        present = present & mask.any(dim=1)
        resolved = ResolvedModality(item.data, present, mask, item.coords)
    else:
        data = item.data
        if data.dim() != 2 or data.shape[0] != batch_size or data.shape[1] != spec.dim:
            raise ValueError(
                f"modality {name!r} is a vector: expected data [b={batch_size}, f={spec.dim}], got {tuple(data.shape)}"
            )
        resolved = ResolvedModality(data, present, None, None)
    return resolved
