"""The training run folder (``healnet train --out``) as one versioned contract.

``train`` writes a run and ``evaluate``, ``predict`` and ``demo`` read it through this module and
its siblings only: :mod:`~healnet_cli.artifacts.run_tables` (Parquet/CSV/JSON tables),
:mod:`~healnet_cli.artifacts.run_bundle` (per-fold model bundles) and
:mod:`~healnet_cli.artifacts.run_external` (``healnet predict`` output). No other module spells a
file name of the run.

Layout (run schema ``healnet.run/2``)::

    <run>/
      run.json                       the contract (:class:`RunManifest`), written when the run is created
      config.yaml                    resolved options of `healnet train` and their sources (for people)
      env.json                       versions, git revision, host, seeds, input fingerprints
      cohort.json                    patients, events, modality patterns, patients left out by --splits
      splits.csv                     patient_id, fold, split (train | val | test)
      labels.parquet                 the cohort's labels
      fold_<k>/checkpoint.pt         fold bundle: model(s) + preprocessing + bin edges + fingerprints
      fold_<k>/history.jsonl         per epoch (member 0); fold_<k>/member_<m>/history.jsonl
      fold_<k>/predictions.parquet   the fold's test predictions
      fold_<k>/state.pt              resumable state while the fold trains
      refit/checkpoint.pt, refit/history.jsonl   the model refitted on all patients (--refit-all)
      predictions.parquet            out-of-fold predictions of every fold (gathered)
      summary.json, summary.csv, failures.json
      evaluation/                    healnet evaluate: metrics.json, summary.md, report.html, *.png
      run.lock, fold_<k>.lock        held while a `healnet train` process writes the run / that fold

Runs written before ``run.json`` existed are schema 1: :func:`read_manifest` derives what it can
from ``config.yaml`` and ``splits.csv`` and sets ``schema_version = 1``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from healnet_cli import __version__
from healnet_cli.core import atomic
from healnet_cli.core.errors import InputError
from healnet_cli.core.store import ArtifactStore

RUN_SCHEMA = "healnet.run/2"
RUN_SCHEMA_VERSION = 2
WSI = "wsi"  # the modality name of whole-slide image features (every other modality is an omics table)

RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"
ENV_FILE = "env.json"
COHORT_FILE = "cohort.json"
SPLITS_FILE = "splits.csv"
LABELS_FILE = "labels.parquet"
PREDICTIONS_FILE = "predictions.parquet"
SUMMARY_JSON = "summary.json"
SUMMARY_CSV = "summary.csv"
FAILURES_FILE = "failures.json"
CHECKPOINT_FILE = "checkpoint.pt"
HISTORY_FILE = "history.jsonl"
STATE_FILE = "state.pt"
REFIT_DIR = "refit"
EVALUATION_DIR = "evaluation"
COMPARISON_DIR = "comparison"
COMPARISON_FILE = "comparison.json"
METRICS_FILE = "metrics.json"
REPORT_HTML = "report.html"
SUMMARY_MD = "summary.md"
RUN_LOCK = "run"
FOLD_DIR_RE = re.compile(r"^fold_(\d+)$")
HINT = "rerun `healnet train` (or pass the run's --out folder)"


@dataclass(frozen=True)
class RunLayout:
    """Every path of one run folder."""

    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike[str]) -> RunLayout:
        return cls(Path(root))

    @property
    def manifest(self) -> Path:
        return self.root / RUN_FILE

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def env(self) -> Path:
        return self.root / ENV_FILE

    @property
    def cohort(self) -> Path:
        return self.root / COHORT_FILE

    @property
    def splits(self) -> Path:
        return self.root / SPLITS_FILE

    @property
    def labels(self) -> Path:
        return self.root / LABELS_FILE

    @property
    def predictions(self) -> Path:
        return self.root / PREDICTIONS_FILE

    @property
    def summary_json(self) -> Path:
        return self.root / SUMMARY_JSON

    @property
    def summary_csv(self) -> Path:
        return self.root / SUMMARY_CSV

    @property
    def failures(self) -> Path:
        return self.root / FAILURES_FILE

    @property
    def evaluation(self) -> Path:
        return self.root / EVALUATION_DIR

    def fold_dir(self, k: int) -> Path:
        return self.root / f"fold_{k}"

    def checkpoint(self, k: int) -> Path:
        return self.fold_dir(k) / CHECKPOINT_FILE

    def fold_predictions(self, k: int) -> Path:
        return self.fold_dir(k) / PREDICTIONS_FILE

    def member_dir(self, k: int, member: int) -> Path:
        """Where ensemble member ``member`` of fold ``k`` keeps its history and state (0: the fold's)."""
        return member_subdir(self.fold_dir(k), member)

    @property
    def refit_dir(self) -> Path:
        return self.root / REFIT_DIR

    @property
    def refit_checkpoint(self) -> Path:
        return self.refit_dir / CHECKPOINT_FILE

    def fold_dirs(self) -> dict[int, Path]:
        """``fold_<k>`` sub-folders by fold index."""
        if not self.root.is_dir():
            return {}
        return {int(m.group(1)): p for p in self.root.iterdir() if p.is_dir() and (m := FOLD_DIR_RE.match(p.name))}

    def folds_with_checkpoint(self) -> list[int]:
        return sorted(k for k in self.fold_dirs() if self.checkpoint(k).is_file())

    def fold_done(self, k: int) -> bool:
        """A fold is finished when its bundle and its test predictions are both written."""
        return self.checkpoint(k).is_file() and self.fold_predictions(k).is_file()

    def is_run(self) -> bool:
        return self.splits.is_file() or self.manifest.is_file()

    def lock_store(self) -> ArtifactStore:
        """The lock files of this run (``run.lock``, ``fold_<k>.lock``)."""
        return ArtifactStore(self.root, "train", {})


def member_subdir(model_dir: Path, member: int) -> Path:
    """``model_dir`` for member 0, ``model_dir/member_<m>`` for the other members of an ensemble."""
    return model_dir if member == 0 else model_dir / f"member_{member}"


def state_paths(model_dir: Path) -> list[Path]:
    """The resumable training states of a fold (or the refit) and of its ensemble members."""
    return [model_dir / STATE_FILE, *model_dir.glob(f"member_*/{STATE_FILE}")]


def fold_lock(k: int) -> str:
    return f"fold_{k}"


def require_run(root: str | os.PathLike[str]) -> RunLayout:
    """The layout of an existing run folder.

    Raises
    ------
    InputError
        ``root`` is not a folder or holds no run.
    """
    layout = RunLayout.at(root)
    if not layout.root.is_dir():
        raise InputError(f"run folder {layout.root} not found; pass the --out folder of `healnet train`")
    if not layout.is_run():
        raise InputError(
            f"{layout.root}: not a run folder (no {RUN_FILE} or {SPLITS_FILE}); pass the --out folder of `healnet "
            "train`"
        )
    return layout


@dataclass
class RunManifest:
    """What ``run.json`` records (see the module docstring)."""

    model: str
    modalities: list[str]
    loss: str = "nll"
    n_bins: int | None = None
    time_unit: str = "unknown"
    folds: list[int] = field(default_factory=list)
    workdir: str | None = None
    extractor: str | None = None
    defining_options: dict[str, Any] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)
    bin_edges_all: list[float] | None = None
    risk_cutoffs: dict[str, list[float]] = field(default_factory=dict)
    refit: dict[str, Any] | None = None
    schema_version: int = RUN_SCHEMA_VERSION
    healnet_version: str = __version__
    created: str = ""

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("schema_version")
        return {"schema": RUN_SCHEMA, **out}


def write_manifest(layout: RunLayout, manifest: RunManifest) -> Path:
    """Write ``run.json`` (atomically)."""
    if not manifest.created:
        manifest.created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return atomic.write_json(layout.manifest, manifest.as_dict())


def update_manifest(layout: RunLayout, **changes: Any) -> RunManifest:
    """Read ``run.json``, set ``changes`` and write it back (schema-1 runs get a ``run.json`` now)."""
    manifest = read_manifest(layout)
    for key, value in changes.items():
        setattr(manifest, key, value)
    manifest.schema_version = RUN_SCHEMA_VERSION
    write_manifest(layout, manifest)
    return manifest


def read_manifest(layout: RunLayout) -> RunManifest:
    """The run's contract: ``run.json``, or for a schema-1 run what ``config.yaml`` and
    ``splits.csv`` say.

    Raises
    ------
    InputError
        Not a run folder, an unreadable ``run.json``, or a schema this healnet does not know.
    """
    path = layout.manifest
    if not path.is_file():
        return _legacy_manifest(require_run(layout.root))
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not readable JSON ({exc}); {HINT}") from exc
    schema = str(data.pop("schema", ""))
    name, _, version = schema.partition("/")
    if name != RUN_SCHEMA.split("/")[0] or not version.isdigit():
        raise InputError(f"{path}: schema {schema!r}, expected {RUN_SCHEMA!r}; {HINT}")
    if int(version) > RUN_SCHEMA_VERSION:
        raise InputError(
            f"{path}: run schema {schema} was written by a newer healnet ({data.get('healnet_version')}); "
            f"this healnet {__version__} reads up to {RUN_SCHEMA}: upgrade healnet"
        )
    known = {f for f in RunManifest.__dataclass_fields__ if f != "schema_version"}
    return RunManifest(**{k: v for k, v in data.items() if k in known}, schema_version=int(version))


def _legacy_manifest(layout: RunLayout) -> RunManifest:
    opts = read_options(layout.root)
    mods = opts.get("modalities") or []
    if isinstance(mods, str):
        mods = [m.strip() for m in mods.split(",") if m.strip()]
    folds: list[int] = []
    if layout.splits.is_file():
        import pandas as pd

        try:
            folds = sorted(int(k) for k in pd.read_csv(layout.splits, usecols=["fold"])["fold"].unique())
        except (OSError, ValueError):
            folds = []
    return RunManifest(
        model=str(opts.get("model") or "unknown"),
        modalities=[str(m) for m in mods],
        loss=str(opts.get("loss") or "nll"),
        n_bins=int(opts["n_bins"]) if opts.get("n_bins") is not None else None,
        folds=folds,
        workdir=opts.get("workdir"),
        extractor=opts.get("extractor"),
        defining_options={},
        schema_version=1,
        healnet_version=str(opts.get("healnet_version") or ""),
    )


def read_options(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``options`` of a folder's ``config.yaml`` (``{}`` without one): the one reader.

    Raises
    ------
    InputError
        The file is not valid YAML.
    """
    import yaml

    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: invalid YAML; {HINT}") from exc
    return dict(data.get("options") or {}) if isinstance(data, dict) else {}
