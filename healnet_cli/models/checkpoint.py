"""Checkpoints: a model as plain primitives and tensors, loadable with ``weights_only=True``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from healnet_cli.models._registry import create_model
from healnet_cli.models.base import SurvivalModel, config_to_dict

__all__ = ["load_checkpoint", "model_from_checkpoint", "model_to_checkpoint", "save_checkpoint"]

CHECKPOINT_FORMAT = 1


def model_to_checkpoint(model: SurvivalModel) -> dict[str, Any]:
    """Describe a model with primitives and tensors only.

    Returns
    -------
    dict
        ``{"name", "config": {"modalities", "n_bins", "hparams"}, "state_dict"}``.
    """
    return {
        "name": model.name,
        "config": {
            "modalities": {k: {"kind": v.kind, "dim": int(v.dim)} for k, v in model.modalities.items()},
            "n_bins": int(model.n_bins),
            "hparams": config_to_dict(model.config),
        },
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
    }


def model_from_checkpoint(ckpt: dict[str, Any]) -> SurvivalModel:
    """Rebuild a model from :func:`model_to_checkpoint` output (strict state-dict load).

    Raises
    ------
    ValueError
        If the dictionary lacks a required key.
    """
    missing = [k for k in ("name", "config", "state_dict") if k not in ckpt]
    if missing:
        raise ValueError(f"checkpoint lacks keys {missing}; expected 'name', 'config', 'state_dict'")
    config = ckpt["config"]
    model = create_model(ckpt["name"], config["modalities"], config["n_bins"], **config.get("hparams", {}))
    model.load_state_dict(ckpt["state_dict"], strict=True)
    return model


def save_checkpoint(path: str | os.PathLike, model: SurvivalModel, extra: dict[str, Any] | None = None) -> None:
    """Write a checkpoint atomically (temporary file, then rename).

    ``extra`` must hold only primitives, lists, dicts and tensors so that the file loads
    with ``torch.load(weights_only=True)``.
    """
    path = Path(path)
    payload = {"format": CHECKPOINT_FORMAT, **model_to_checkpoint(model), "extra": dict(extra or {})}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint(path: str | os.PathLike) -> tuple[SurvivalModel, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Returns the model in eval mode on CPU and the ``extra`` dictionary.
    """
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    model = model_from_checkpoint(payload)
    model.eval()
    return model, payload.get("extra", {})
