"""The resolved options of ``healnet train`` and the per-model training defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from healnet_cli.artifacts.run import WSI
from healnet_cli.core.errors import InputError
from healnet_cli.core.workspace import slug

LOSSES = ("nll", "cox")

# Model hyper-parameters used by `healnet train` unless --hparam overrides them. Chosen for cohorts of
# a few hundred patients (small latent arrays, no latent self-attention, dropout), not by looking at
# test folds; see docs/train.md.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "healnet": {
        "depth": 2,
        "num_latents": 16,
        "latent_dim": 32,
        "cross_heads": 1,
        "cross_dim_head": 32,
        "self_per_cross_attn": 0,
        "attn_dropout": 0.1,
        "ff_dropout": 0.3,
        "ff_mult": 2,
        "linear_modalities": ["clinical"],
    },
    "ehpal": {
        "token_dim": 32,
        "widths": [32, 32, 64, 64],
        "sir_max_width": 64,
        "pool_dim": 32,
        "dropout": 0.3,
        "omics_segments": 16,
        "omics_dropout": 0.3,
    },
    "snn": {"hidden_dim": 64, "depth": 2, "dropout": 0.25},
    "abmil": {"hidden_dim": 128, "attn_dim": 64, "dropout": 0.25},
    "concat": {"hidden_dim": 64, "attn_dim": 64, "fusion_dim": 64, "dropout": 0.25},
    "late": {"hidden_dim": 64, "attn_dim": 64, "dropout": 0.25},
}


@dataclass
class TrainConfig:
    """Every option of one training run (one flag ↔ one field)."""

    modalities: list[str]
    model: str = "healnet"
    workdir: Path = Path("healnet_work")
    out: Path | None = None
    name: str | None = None
    extractor: str | None = None
    splits: Path | None = None
    folds: int = 5
    fold: int | None = None
    require_all: bool = False
    n_bins: int = 4
    alpha: float = 0.4
    loss: str = "nll"
    epochs: int = 50
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 1e-2
    warmup_epochs: int = 2
    patience: int = 10
    monitor: str = "loss"
    val_fraction: float = 0.15
    l1: float = 0.0
    modality_dropout: float = 0.0
    max_patches: int | None = 4096
    top_k: int | None = None
    clip: float = 5.0
    grad_accum: int = 1
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    ensemble: int = 3
    resume: bool = False
    refit_all: bool = False
    compile: bool = False
    hparams: dict[str, Any] = field(default_factory=dict)

    def model_hparams(self) -> dict[str, Any]:
        """The model's training defaults overridden by ``--hparam``."""
        return {**MODEL_DEFAULTS.get(self.model, {}), **self.hparams}

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["workdir"] = str(Path(self.workdir).resolve())
        d["out"] = str(self.out) if self.out is not None else None
        d["splits"] = str(Path(self.splits).resolve()) if self.splits is not None else None
        d["hparams"] = self.model_hparams()
        return d


def parse_hparams(items: list[str] | None) -> dict[str, Any]:
    """``["depth=2", "widths=[32,64]"]`` → ``{"depth": 2, "widths": [32, 64]}`` (YAML values)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--hparam {item!r}: expected KEY=VALUE, e.g. --hparam depth=2")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise InputError(f"--hparam {item!r}: the value is not valid YAML") from exc
    return out


def check_config(cfg: TrainConfig) -> None:
    """Validate option values before any work (exit 2 on failure)."""
    from healnet_cli.models import get_model_class, list_models

    names = list_models()
    if cfg.model not in names:
        raise InputError(f"--model {cfg.model!r} is unknown; valid models: {', '.join(names)}")
    if cfg.monitor not in ("loss", "cindex"):
        raise InputError(f"--monitor {cfg.monitor!r} is not one of loss, cindex")
    if cfg.loss not in LOSSES:
        raise InputError(f"--loss {cfg.loss!r} is not one of {', '.join(LOSSES)}")
    checks = [
        (cfg.n_bins >= 1, f"--n-bins {cfg.n_bins}: must be >= 1"),
        (0.0 <= cfg.alpha <= 1.0, f"--alpha {cfg.alpha}: must be in [0, 1]"),
        (cfg.epochs >= 1, f"--epochs {cfg.epochs}: must be >= 1"),
        (cfg.batch_size >= 1, f"--batch-size {cfg.batch_size}: must be >= 1"),
        (cfg.lr > 0, f"--lr {cfg.lr}: must be > 0"),
        (cfg.weight_decay >= 0, f"--weight-decay {cfg.weight_decay}: must be >= 0"),
        (cfg.patience >= 1, f"--patience {cfg.patience}: must be >= 1"),
        (0.0 <= cfg.val_fraction < 0.5, f"--val-fraction {cfg.val_fraction}: must be in [0, 0.5)"),
        (cfg.l1 >= 0, f"--l1 {cfg.l1}: must be >= 0"),
        (0.0 <= cfg.modality_dropout < 1.0, f"--modality-dropout {cfg.modality_dropout}: must be in [0, 1)"),
        (cfg.max_patches is None or cfg.max_patches >= 1, f"--max-patches {cfg.max_patches}: must be >= 1"),
        (cfg.top_k is None or cfg.top_k >= 1, f"--top-k {cfg.top_k}: must be >= 1"),
        (cfg.clip >= 0, f"--clip {cfg.clip}: must be >= 0 (0 = no clipping)"),
        (cfg.ensemble >= 1, f"--ensemble {cfg.ensemble}: must be >= 1"),
        (cfg.grad_accum >= 1, f"--grad-accum {cfg.grad_accum}: must be >= 1"),
        (cfg.splits is not None or cfg.folds >= 2, f"--folds {cfg.folds}: must be >= 2"),
        (cfg.fold is None or cfg.fold >= 0, f"--fold {cfg.fold}: must be >= 0"),
        (
            cfg.name is None or (cfg.name not in (".", "..") and cfg.name == slug(cfg.name)),
            f"--name {cfg.name!r}: use a plain folder name (letters, digits, . _ -), or --out for a path",
        ),
        (
            cfg.fold is None or cfg.out is not None or cfg.name is not None,
            f"--fold {cfg.fold}: pass --out or --name, so that every fold job writes the same run folder",
        ),
        (
            not (cfg.refit_all and cfg.fold is not None),
            "--refit-all trains on all patients once every fold is done: run it without --fold (add --resume to an "
            "existing run)",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise InputError(message)
    kinds = getattr(get_model_class(cfg.model), "modality_kinds", ("bag", "vector"))
    if WSI in cfg.modalities and "bag" not in kinds:
        raise InputError(f"--model {cfg.model} works on omics only; drop wsi from --modalities or pick another model")
    only = getattr(get_model_class(cfg.model), "required_modalities", None)
    if only is not None and tuple(cfg.modalities) != tuple(only):
        raise InputError(
            f"--model {cfg.model} takes --modalities {','.join(only)} only (got {','.join(cfg.modalities)})"
        )
