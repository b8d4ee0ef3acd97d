"""The output folder of ``healnet predict``: a trained run applied to another workspace.

::

    <out>/                      (--out; default <workdir>/predictions/<run name>)
      predictions.parquet       patient_id, risk, surv_0..surv_{B-1}, has_<modality>, time, event
                                (the run's out-of-fold columns; time/event where labels exist, NaN
                                elsewhere); metadata: bin_edges (one list), time_unit, model,
                                modalities, loss, kind = external
      predict.json              healnet.predict/1: the run (path, fingerprint, model, modalities),
                                members used, workdir, coverage and features per modality (imputed
                                counts), WSI provenance, warnings, patients shared with the training
                                cohort, the run's risk cut-offs, options
      evaluation/               healnet evaluate <out>

``healnet evaluate`` reads this folder with :func:`read_external` and nothing else.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from healnet_cli import __version__
from healnet_cli.artifacts.run import EVALUATION_DIR, PREDICTIONS_FILE
from healnet_cli.artifacts.run_tables import EXTERNAL, read_predictions, write_predictions
from healnet_cli.core import atomic
from healnet_cli.core.errors import InputError

PREDICT_SCHEMA = "healnet.predict/1"
PREDICT_FILE = "predict.json"
PREDICTIONS_DIR = "predictions"  # <workdir>/predictions/<run name>: the default --out
_HINT = "rerun `healnet predict RUN --workdir W`"


@dataclass(frozen=True)
class PredictLayout:
    """Paths of one ``healnet predict`` output folder."""

    root: Path

    @property
    def predictions(self) -> Path:
        return self.root / PREDICTIONS_FILE

    @property
    def record(self) -> Path:
        return self.root / PREDICT_FILE

    @property
    def evaluation(self) -> Path:
        return self.root / EVALUATION_DIR


def default_predict_dir(workdir: str | os.PathLike[str], run_name: str) -> Path:
    return Path(workdir) / PREDICTIONS_DIR / run_name


def is_predict_dir(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` holds the output of ``healnet predict``."""
    return PredictLayout(Path(path)).record.is_file()


def prepare_predict_dir(path: str | os.PathLike[str]) -> PredictLayout:
    """The output folder, created; refuses a non-empty folder that predict did not write.

    Raises
    ------
    InputError
        ``path`` is a file, or a folder without ``predict.json`` holding files that predict did not
        write (its temporaries and a predictions.parquet of a killed predict do not count).
    """
    layout = PredictLayout(Path(path))
    if layout.root.exists() and not layout.root.is_dir():
        raise InputError(f"--out {layout.root}: exists and is not a folder; choose another --out")
    if layout.root.is_dir():
        atomic.sweep_temporaries(layout.root)  # of a killed predict: they do not make the folder foreign
    own = {layout.predictions.name, layout.record.name}  # a predict killed before its predict.json
    others = [p for p in layout.root.iterdir() if p.name not in own] if layout.root.is_dir() else []
    if others and not layout.record.is_file():
        raise InputError(
            f"--out {layout.root}: folder is not empty and holds no {PREDICT_FILE}; "
            "choose an empty or new folder (predict replaces only its own outputs)"
        )
    layout.root.mkdir(parents=True, exist_ok=True)
    return layout


def write_external(
    layout: PredictLayout, frame: pd.DataFrame, meta: dict[str, Any], record: dict[str, Any]
) -> list[Path]:
    """``predictions.parquet`` then ``predict.json`` (the commit marker, written last)."""
    written = [write_predictions(layout.predictions, frame, {**meta, "kind": EXTERNAL})]
    written.append(
        atomic.write_json(layout.record, {"schema": PREDICT_SCHEMA, "healnet_version": __version__, **record})
    )
    return written


def read_external(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any]]:
    """The predictions, their metadata and ``predict.json`` of a predict folder.

    Raises
    ------
    InputError
        A file is missing or of another schema.
    """
    layout = PredictLayout(Path(path))
    try:
        record = json.loads(layout.record.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{layout.record}: not readable ({exc}); {_HINT}") from exc
    if str(record.get("schema", "")).split("/")[0] != PREDICT_SCHEMA.split("/")[0]:
        raise InputError(f"{layout.record}: schema {record.get('schema')!r}, expected {PREDICT_SCHEMA!r}; {_HINT}")
    if not layout.predictions.is_file():
        raise InputError(f"{layout.predictions} not found; {_HINT}")
    frame, meta = read_predictions(layout.predictions, hint=_HINT)
    return frame, meta, record
