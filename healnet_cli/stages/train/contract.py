"""Creating a run folder, and checking that a resume or a fold job continues the same run.

The options that define a run (everything that changes its results) are stored in ``run.json``;
a later ``healnet train`` into the same ``--out`` (``--resume``, ``--fold K``) must repeat them.
Options that change only where or how fast it runs may differ: ``--device``, ``--precision``,
``--workdir`` (a staged copy of the same data), and the bookkeeping flags ``--fold``, ``--resume``,
``--out``, ``--name``, ``--refit-all``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from healnet_cli.artifacts.omics import modality_path
from healnet_cli.artifacts.run import (
    CONFIG_FILE,
    WSI,
    RunLayout,
    RunManifest,
    read_manifest,
    read_options,
    write_manifest,
)
from healnet_cli.artifacts.run_bundle import feature_provenance
from healnet_cli.artifacts.run_tables import write_labels, write_splits
from healnet_cli.core import atomic
from healnet_cli.core.config import plain, write_resolved_config
from healnet_cli.core.errors import InputError
from healnet_cli.core.fingerprint import combine, file_fingerprint
from healnet_cli.core.workspace import Workspace
from healnet_cli.data.cohort import Cohort
from healnet_cli.data.fitted import is_fitted
from healnet_cli.data.splits import Fold, splits_frame
from healnet_cli.data.survival import fit_bin_edges
from healnet_cli.stages.train.config import TrainConfig
from healnet_cli.stages.train.loop import Dist
from healnet_cli.stages.train.outputs import environment

#: TrainConfig fields that do not define a run (may differ between the processes writing it).
NOT_DEFINING = frozenset({"device", "precision", "workdir", "fold", "resume", "out", "name", "refit_all", "compile"})
#: How long a `--fold K` job waits for another job that is creating the same run folder.
SETUP_WAIT_S = 120.0


def defining_options(cfg: TrainConfig, cohort: Cohort) -> dict[str, Any]:
    """The run-defining options (resolved: model hyper-parameters with their defaults, the
    features folder actually used)."""
    out = {k: v for k, v in cfg.as_dict().items() if k not in NOT_DEFINING}
    out["extractor"] = cohort.extractor
    return plain(out)


def _flag(key: str) -> str:
    return "--hparam" if key == "hparams" else "--" + key.replace("_", "-")


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def check_same_run(layout: RunLayout, current: dict[str, Any]) -> None:
    """Refuse to continue a run with other run-defining options (a schema-1 run: its config.yaml).

    Raises
    ------
    InputError
        Naming every option that differs, with the run's and this command's values.
    """
    stored = read_manifest(layout).defining_options or read_options(layout.root)
    diffs = [k for k in sorted(current) if k in stored and not _same(stored[k], current[k])]
    if diffs:
        listed = "; ".join(f"{_flag(k)} {_show(stored[k])} (this command: {_show(current[k])})" for k in diffs)
        raise InputError(
            f"--out {layout.root} holds a run trained with other run-defining options: {listed}; "
            "repeat the run's options (recorded in its run.json) or choose a new --out"
        )


def training_provenance(cohort: Cohort) -> dict[str, Any]:
    """What the inputs of the run were: WSI feature provenance (as the cohort's feature files record
    it) and, per omics table, its file, fingerprint and number of columns."""
    out: dict[str, Any] = {}
    if WSI in cohort.modalities:
        paths = [ref.path for refs in cohort.slides.values() for ref in refs]
        out[WSI] = {**feature_provenance(paths), "folder": cohort.extractor}
    omics_dir = Workspace.at(cohort.workdir).omics_dir
    for m in cohort.modalities:
        if m != WSI:
            path = modality_path(omics_dir, m)
            out[m] = {
                "file": str(path),
                "fingerprint": cohort.fingerprints.get(str(path)),
                "n_columns": int(cohort.omics[m].shape[1]),
            }
    return out


def inputs_fingerprint(cohort: Cohort) -> str:
    return combine(f"{k}={v}" for k, v in sorted(cohort.fingerprints.items()))


def new_manifest(cfg: TrainConfig, cohort: Cohort, folds: list[Fold], provenance: dict[str, Any]) -> RunManifest:
    lab = cohort.labels
    return RunManifest(
        model=cfg.model,
        modalities=list(cohort.modalities),
        loss="cox" if is_fitted(cfg.model) else cfg.loss,
        n_bins=cfg.n_bins,
        time_unit=cohort.time_unit,
        folds=[f.index for f in folds],
        workdir=str(cohort.workdir),
        extractor=cohort.extractor,
        defining_options=defining_options(cfg, cohort),
        features=provenance,
        bin_edges_all=fit_bin_edges(lab["time"].to_numpy(), lab["event"].to_numpy(bool), cfg.n_bins),
    )


def write_run_files(
    cfg: TrainConfig,
    cohort: Cohort,
    layout: RunLayout,
    folds: list[Fold],
    info: dict[str, Any],
    options: dict[str, Any],
    sources: dict[str, str] | None,
    dist: Dist,
    provenance: dict[str, Any],
) -> None:
    """Write the run-level files that do not exist yet (all of them for a new run; an interrupted
    creation is completed; a resume rewrites none, so cohort.json keeps what --splits dropped)."""
    if not layout.manifest.is_file():
        write_manifest(layout, new_manifest(cfg, cohort, folds, provenance))
    if not layout.config.is_file():
        opts = {**options, **cfg.as_dict(), "out": str(layout.root), "extractor": cohort.extractor}
        write_resolved_config(layout.root, opts, command="train", sources=sources, name=CONFIG_FILE)
    if not layout.env.is_file():
        prints = dict(cohort.fingerprints)
        if cfg.splits is not None:
            prints.update({str(p): file_fingerprint(p) for p in sorted(Path(cfg.splits).glob("splits_*.csv"))})
        env = environment(
            {"seed": cfg.seed, "fold_init": {str(f.index): cfg.seed * 1000 + f.index for f in folds}},
            prints,
            {"world_size": dist.world, "device": str(cfg.device), "torch_threads": torch.get_num_threads()},
        )
        atomic.write_json(layout.env, env)
    if not layout.labels.is_file():
        write_labels(layout, cohort.labels, cohort.time_unit)
    if not layout.cohort.is_file():
        atomic.write_json(
            layout.cohort,
            {
                "n_patients": len(cohort.patients),
                "n_events": int(cohort.labels["event"].sum()),
                "modalities": cohort.modalities,
                "patterns": cohort.pattern_counts(),
                "require_all": cfg.require_all,
                "extractor": cohort.extractor,
                "time_unit": cohort.time_unit,
                "workdir": str(cohort.workdir),
                **info,
            },
        )
    if not layout.splits.is_file():
        write_splits(layout, splits_frame(folds))


class RunLocks:
    """The lock files of a run folder held by this process (rank 0 of a torchrun job only)."""

    def __init__(self, layout: RunLayout, dist: Dist):
        self.store, self.active = layout.lock_store(), dist.is_main
        self.held: list[str] = []

    def take(self, item: str, what: str, *, wait_s: float = 0.0) -> None:
        """Take ``item``'s lock, waiting up to ``wait_s`` seconds for another holder.

        Raises
        ------
        InputError
            Another live process holds it.
        """
        if not self.active:
            return
        deadline = time.monotonic() + wait_s
        while (holder := self.store.acquire_lock(item)) is not None:
            if time.monotonic() >= deadline:
                raise InputError(
                    f"--out {self.store.folder}: {what} is being written by another `healnet train` process "
                    f"({holder}); wait for it to finish, or choose another --out"
                )
            time.sleep(0.5)
        self.held.append(item)

    def drop(self, item: str) -> None:
        if item in self.held:
            self.store.release_lock(item)
            self.held.remove(item)

    def release_all(self) -> None:
        for item in list(self.held):
            self.drop(item)
