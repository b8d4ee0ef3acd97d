"""The inference functions evaluate needs (``load_fold``, ``predict_patients``), injectable.

Production code uses :mod:`healnet_cli.data.inference`; tests pass a small fake with the same two
functions. Fold models are loaded once and shared by the ablation and the attention maps; the
cohort (labels, omics tables, the slide index) is read once per run and handed to every fold.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol


class Inference(Protocol):
    def load_fold(
        self,
        run_dir: str | os.PathLike[str],
        fold: int,
        *,
        workdir: Any = None,
        device: str = "cpu",
        cohort: Any = None,
    ) -> Any: ...

    def predict_patients(
        self,
        fold_model: Any,
        patient_ids: Sequence[str],
        *,
        drop: Mapping[str, Collection[str]] | None = None,
        return_weights: bool = False,
        batch_size: int = 8,
        bag_cache: dict[str, Any] | None = None,
    ) -> Any: ...


def default_inference() -> Inference:
    """The real inference module (imported lazily: it pulls in torch)."""
    from healnet_cli.data import inference

    return inference


class FoldModels:
    """Loads each fold's model on first use and keeps it."""

    def __init__(self, inference: Inference, run_dir: Path, *, workdir: Path | None, device: str):
        self.inference = inference
        self.run_dir = run_dir
        self.workdir = workdir
        self.device = device
        self._cache: dict[int, Any] = {}

    def get(self, fold: int) -> Any:
        if fold not in self._cache:
            cohort = next((getattr(m, "cohort", None) for m in self._cache.values()), None)
            self._cache[fold] = self.inference.load_fold(
                self.run_dir, fold, workdir=self.workdir, device=self.device, cohort=cohort
            )
        return self._cache[fold]
