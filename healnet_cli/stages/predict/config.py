"""Options of ``healnet predict``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from healnet_cli.core.errors import InputError

FOLDS = "folds"
REFIT = "refit"
MODELS = (FOLDS, REFIT)


@dataclass(frozen=True)
class PredictConfig:
    """Resolved, validated options (one field per CLI flag).

    Attributes
    ----------
    run
        The run folder of ``healnet train``.
    workdir
        The external workspace (tiles/, features/, omics/) whose patients are predicted.
    out
        Output folder (default ``<workdir>/predictions/<run name>``).
    model
        ``folds``: the fold ensemble (every fold's model, hazards averaged), or one fold with
        ``fold``; ``refit``: the model ``healnet train --refit-all`` trained on all patients.
    modalities
        The run's modalities to use (default: every one the workspace has).
    extractor
        Features folder of the workspace (default: the run's, else the only one).
    min_feature_overlap
        Smallest share of a run's omics features the external table must have (the rest are
        imputed with the training medians).
    """

    run: Path
    workdir: Path
    out: Path | None = None
    model: str = FOLDS
    fold: int | None = None
    modalities: tuple[str, ...] = ()
    extractor: str | None = None
    min_feature_overlap: float = 0.8
    device: str = "cpu"
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise InputError(f"--model {self.model!r} is not one of {', '.join(MODELS)}")
        if self.fold is not None and self.model != FOLDS:
            raise InputError("--fold K picks one fold's model: it cannot be combined with --model refit")
        if self.fold is not None and self.fold < 0:
            raise InputError(f"--fold {self.fold}: must be >= 0")
        if not 0.0 <= self.min_feature_overlap <= 1.0:
            raise InputError(f"--min-feature-overlap {self.min_feature_overlap}: must be in [0, 1]")
        if self.batch_size < 1:
            raise InputError(f"--batch-size {self.batch_size}: must be >= 1")


def parse_modalities(text: str | None) -> tuple[str, ...]:
    """``"wsi, rna"`` → ``("wsi", "rna")``."""
    return tuple(dict.fromkeys(m.strip() for m in (text or "").split(",") if m.strip()))
