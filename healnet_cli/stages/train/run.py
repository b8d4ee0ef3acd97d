"""Orchestration of ``healnet train``: cohort → folds → per-fold training → run folder."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import torch

from healnet_cli.artifacts.run import RUN_LOCK, WSI, RunLayout, fold_lock, read_manifest, require_run, update_manifest
from healnet_cli.artifacts.run_tables import (
    clear_failures,
    gather_predictions,
    read_splits,
    record_failures,
    risk_cutoffs,
    write_summary,
)
from healnet_cli.core import atomic
from healnet_cli.core.console import Console
from healnet_cli.core.device import resolve_device, resolve_precision
from healnet_cli.core.errors import EXIT_OK, EXIT_PARTIAL, DiskFullError, HealnetError, InputError, one_line
from healnet_cli.core.workspace import Workspace
from healnet_cli.data.cohort import Cohort, load_cohort
from healnet_cli.data.fitted import is_fitted
from healnet_cli.data.inference import cpu_threads as inference_threads
from healnet_cli.data.splits import (
    MIN_VAL_SOURCE,
    Fold,
    folds_from_frame,
    inner_validation,
    make_folds,
    read_splits_dir,
)
from healnet_cli.stages.train.config import TrainConfig, check_config
from healnet_cli.stages.train.contract import (
    SETUP_WAIT_S,
    RunLocks,
    check_same_run,
    defining_options,
    training_provenance,
    write_run_files,
)
from healnet_cli.stages.train.fold import FoldTrainer, remove_states
from healnet_cli.stages.train.loop import Dist
from healnet_cli.stages.train.outputs import summarise, summary_line


def run_folder(cfg: TrainConfig) -> Path:
    """``--out``, else ``<workdir>/runs/<--name>``, else ``<workdir>/runs/<model>-<modalities>-<timestamp>``."""
    if cfg.out is not None:
        return Path(cfg.out)
    name = cfg.name or f"{cfg.model}-{'+'.join(cfg.modalities)}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    return Workspace.at(cfg.workdir).runs_dir / name


def init_distributed(device_spec: str) -> Dist:
    """Join the torchrun process group when ``WORLD_SIZE > 1`` (nccl on CUDA, gloo otherwise)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as tdist

    use_cuda = torch.cuda.is_available() and device_spec != "cpu"
    if not tdist.is_initialized():
        tdist.init_process_group("nccl" if use_cuda else "gloo")
    return Dist(rank=tdist.get_rank(), world=tdist.get_world_size())


def _barrier(dist: Dist) -> None:
    if dist.world > 1:
        import torch.distributed as tdist

        tdist.barrier()


def cpu_threads(cfg: TrainConfig, device: torch.device) -> int | None:
    """Intra-op threads for CPU training (see :func:`healnet_cli.data.inference.cpu_threads`)."""
    return inference_threads(cfg.modalities, device)


def plan_folds(
    cfg: TrainConfig, cohort: Cohort, layout: RunLayout, console: Console
) -> tuple[list[Fold], dict[str, Any]]:
    """Folds with inner validation sets; reused from ``splits.csv`` when the run folder has one."""
    if layout.splits.is_file():
        return folds_from_frame(read_splits(layout)), {}
    info: dict[str, Any] = {}
    if cfg.splits is not None:
        folds, report = read_splits_dir(cfg.splits, cohort.patients)
        for k in report.dropped:
            if report.dropped[k]:
                console.warn(
                    f"splits_{k}.csv: {len(report.dropped[k])} cohort patient(s) in neither column are left out of "
                    f"fold {k}"
                )
            if report.unknown[k]:
                console.warn(
                    f"splits_{k}.csv: {len(report.unknown[k])} id(s) not in the cohort are ignored (e.g. "
                    f"{report.unknown[k][0]})"
                )
        info = {"dropped_by_splits": report.dropped, "unknown_in_splits": report.unknown}
    else:
        folds = make_folds(cohort.labels, cfg.folds, cfg.seed)
    for f in folds:
        f.val = inner_validation(f.train, cohort.labels["event"], cfg.val_fraction, cfg.seed + f.index)
    return folds, info


#: The fewest patients a fold may be fitted on.
MIN_TRAIN_PATIENTS = 2


def check_events(cohort: Cohort, folds: list[Fold], console: Console) -> None:
    """Before any training: the cohort and every fold's training patients need events (an input
    error with the counts otherwise); a fold whose test set has none is trained with a warning,
    since its c-index cannot be computed.

    Raises
    ------
    InputError
        No events in the cohort, or a fold fitted on fewer than :data:`MIN_TRAIN_PATIENTS`
        patients or on patients without an event.
    """
    event = cohort.labels["event"].astype(bool)
    if not event.any():
        raise InputError(
            f"the cohort has 0 events among {len(event)} patients (all censored): a survival model needs events; "
            "check the event column of omics/labels.parquet (`healnet omics labels --event-col C`, or "
            "--censor-col C when the column flags censoring)"
        )
    for f in folds:
        fit, n_fit = int(event.loc[f.fit].sum()), len(f.fit)
        if n_fit < MIN_TRAIN_PATIENTS or fit == 0:
            held = f" ({len(f.val)} more held out for inner validation)" if f.val else ""
            raise InputError(
                f"fold {f.index} would be fitted on {n_fit} patient(s) with {fit} event(s){held} "
                f"(the cohort: {len(event)} patients, {int(event.sum())} events); every fold needs "
                f"{MIN_TRAIN_PATIENTS}+ training patients with an event: use fewer --folds, more patients, "
                "or --splits with events in every training set"
            )
        n_events = int(event.loc[f.test].sum())
        if n_events == 0 or len(f.test) < 2:
            what = (
                f"no events among its {len(f.test)} test patients" if n_events == 0 else f"{len(f.test)} test patient"
            )
            console.warn(
                f"fold {f.index}: {what}: it is trained, but its c-index cannot be computed; the summary "
                "says how many folds were scored"
            )


def check_hparams(cfg: TrainConfig, cohort: Cohort) -> None:
    """Build the model once on the cohort's dimensions so a bad ``--hparam`` fails before any work."""
    from healnet_cli.models import ModalitySpec, create_model

    specs = {
        m: ModalitySpec("bag", cohort.bag_dim())
        if m == WSI
        else ModalitySpec("vector", max(1, cohort.omics[m].shape[1]))
        for m in cohort.modalities
    }
    try:
        create_model(cfg.model, specs, cfg.n_bins, **cfg.model_hparams())
    except (ValueError, TypeError) as exc:
        raise InputError(f"--model {cfg.model} / --hparam: {exc}") from exc


def prepare_run(
    cfg: TrainConfig,
    cohort: Cohort,
    layout: RunLayout,
    console: Console,
    dist: Dist,
    options: dict[str, Any],
    sources: dict[str, str] | None,
) -> list[Fold]:
    """Check the folder (a new run, or the same run continued), plan the folds, write the run files."""
    exists = layout.is_run()
    if exists and not cfg.resume and cfg.fold is None:
        raise InputError(f"--out {layout.root} already holds a run; pass --resume to continue it or choose a new --out")
    if exists:
        check_same_run(layout, defining_options(cfg, cohort))
    elif cfg.fold is None:
        for k_dir in layout.fold_dirs().values():
            remove_states(k_dir)
    folds, info = plan_folds(cfg, cohort, layout, console)
    if cfg.fold is not None and cfg.fold >= len(folds):
        raise InputError(f"--fold {cfg.fold}: the run has folds 0..{len(folds) - 1}")
    check_events(cohort, [f for f in folds if cfg.fold is None or f.index == cfg.fold], console)
    _barrier(dist)  # every rank has checked the folder before rank 0 writes into it
    if dist.is_main:
        write_run_files(cfg, cohort, layout, folds, info, options, sources, dist, training_provenance(cohort))
    _barrier(dist)
    return folds


def _setup(cfg: TrainConfig, console: Console) -> tuple[Dist, Console, torch.device, Any]:
    check_config(cfg)
    dist = init_distributed(cfg.device)
    if not dist.is_main:
        console = Console(quiet=True)  # rank 0 reports
    if dist.world > 1 and cfg.out is None and cfg.name is None:
        raise InputError("torchrun: pass --out or --name so that every process writes the same run folder")
    device = resolve_device(cfg.device)
    if dist.world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    threads = cpu_threads(cfg, device)
    if threads is not None:
        torch.set_num_threads(threads)
    return dist, console, device, resolve_precision(cfg.precision, device)


def run_train(
    cfg: TrainConfig, console: Console, *, options: dict[str, Any] | None = None, sources: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """Train every (or one, ``cfg.fold``) fold, then (``cfg.refit_all``) the model on all patients;
    return the exit code and the summary."""
    dist, console, device, autocast = _setup(cfg, console)
    cohort = load_cohort(cfg.workdir, cfg.modalities, extractor=cfg.extractor, require_all=cfg.require_all)
    check_hparams(cfg, cohort)
    layout = RunLayout.at(run_folder(cfg))
    locks = RunLocks(layout, dist)
    try:
        # A whole-run process holds the run for its duration; a --fold K job only while it sets the run up.
        locks.take(RUN_LOCK, "the run", wait_s=0.0 if cfg.fold is None else SETUP_WAIT_S)
        folds = prepare_run(cfg, cohort, layout, console, dist, options or {}, sources)
        todo = [f for f in folds if cfg.fold is None or f.index == cfg.fold]
        for f in todo:
            locks.take(fold_lock(f.index), f"fold {f.index}")
        sweep_run(layout, [f.index for f in todo], whole_run=cfg.fold is None)
        if cfg.fold is not None:
            locks.drop(RUN_LOCK)
        console.info(
            f"cohort: {len(cohort.patients)} patients, {int(cohort.labels['event'].sum())} events; "
            + ", ".join(f"{k}: {v}" for k, v in cohort.pattern_counts().items())
        )
        trainer = FoldTrainer(cfg, cohort, layout, device, autocast, dist, console, training_provenance(cohort))
        failed = train_folds(cfg, trainer, todo, layout, console, dist)
        summary = finish(layout, [f.index for f in folds], failed, console, write=dist.is_main)
        _barrier(dist)
        if cfg.refit_all and not failed and all(layout.fold_done(f.index) for f in folds):
            from healnet_cli.stages.train.refit import refit_all

            summary["refit"] = refit_all(cfg, trainer, layout, console)
    finally:
        locks.release_all()
    return (EXIT_PARTIAL if failed else EXIT_OK), summary


def sweep_run(layout: RunLayout, folds: list[int], *, whole_run: bool) -> int:
    """Delete the temporaries that killed writers left in the folders of ``folds`` and their
    ensemble members (this process holds their locks: no live writer of them exists anywhere), in
    the run folder and ``refit/`` (a whole-run process holds the run for its duration; a fold job
    only while it sets up, so there only those of dead writers go); return how many."""
    tops = [layout.fold_dir(k) for k in folds] + ([layout.refit_dir] if whole_run else [])
    folders = [d for top in tops for d in (top, *sorted(top.glob("member_*")))]
    return atomic.sweep_temporaries(layout.root, held=whole_run) + sum(
        atomic.sweep_temporaries(d, held=True) for d in folders
    )


def train_folds(
    cfg: TrainConfig, trainer: FoldTrainer, todo: list[Fold], layout: RunLayout, console: Console, dist: Dist
) -> dict[int, str]:
    """Train the folds ``todo`` (finished ones skipped with --resume); ``fold -> reason`` of failures."""
    failed: dict[int, str] = {}
    for fold in todo:
        if cfg.resume and layout.fold_done(fold.index):
            console.info(f"fold {fold.index}: already finished, skipped")
            continue
        if cfg.fold is not None and not cfg.resume:
            remove_states(layout.fold_dir(fold.index))
        console.info(
            f"fold {fold.index}: {len(fold.fit)} train, {len(fold.val)} inner validation, {len(fold.test)} test "
            "patients"
        )
        if not fold.val and not is_fitted(cfg.model):
            why = "--val-fraction 0" if cfg.val_fraction <= 0 else f"fewer than {MIN_VAL_SOURCE} training patients"
            console.info(
                f"fold {fold.index}: no inner validation ({why}): no early stopping, every network trains "
                f"all {cfg.epochs} epochs and keeps its last epoch's weights"
            )
        try:
            trainer.write(fold, trainer.fit(fold, layout.fold_dir(fold.index)))
        except (InputError, DiskFullError):  # a full disk fails every further fold too: stop, keep the finished ones
            raise
        except Exception as exc:  # noqa: BLE001 - one failed fold never sinks a one-process run
            failed[fold.index] = one_line(exc)
            if dist.world > 1:
                # The other ranks may be inside a collective of this fold and would wait for this one
                # forever: stop the process so that torchrun stops them all; --resume goes on.
                raise HealnetError(
                    f"fold {fold.index} failed on rank {dist.rank}: {failed[fold.index]}; under torchrun a failed "
                    "fold stops every process (finished folds are kept): fix the cause and rerun with --resume"
                ) from exc
            console.error(f"fold {fold.index} failed: {failed[fold.index]}")
        _barrier(dist)
    return failed


def finish(
    layout: RunLayout, folds: list[int], failed: dict[int, str], console: Console, *, write: bool = True
) -> dict[str, Any]:
    """Gather predictions, store the risk cut-offs and write the summary when every fold is done; print it."""
    if not write:
        return {}
    record_failures(layout, failed)
    frame = gather_predictions(layout, folds)
    if frame is None:
        done = [k for k in folds if layout.fold_done(k)]
        console.info(
            f"{len(done)}/{len(folds)} folds finished; predictions.parquet is gathered when all are done "
            f"(or with `healnet train --gather --out {layout.root}`)"
        )
        return {"folds_done": done, "failed": {str(k): v for k, v in failed.items()}, "out": str(layout.root)}
    if not failed:
        clear_failures(layout)
    manifest = read_manifest(layout)
    if layout.manifest.is_file():  # schema-1 runs keep their layout; readers derive the cut-offs
        manifest = update_manifest(layout, risk_cutoffs=risk_cutoffs(frame["risk"].to_numpy(float)))
    summary = summarise(
        frame, failed, {"model": manifest.model, "modalities": manifest.modalities, "out": str(layout.root)}
    )
    write_summary(layout, summary)
    for row in summary["folds"]:
        value = f"{row['cindex']:.3f}" if row["cindex"] is not None else f"n/a ({row['reason']})"
        console.info(f"fold {row['fold']}: c-index {value} (n={row['n_test']}, events={row['n_events']})")
    console.info(f"{summary_line(summary)} -> {layout.root}")
    return summary


def gather_run(out: Path, console: Console) -> tuple[int, dict[str, Any]]:
    """``healnet train --gather``: build predictions.parquet + summary from finished folds."""
    layout = RunLayout.at(out)
    if not layout.splits.is_file():
        raise InputError(f"--gather: {out} is not a run folder (no splits.csv); pass the --out of `healnet train`")
    require_run(out)
    folds = sorted(int(k) for k in read_splits(layout)["fold"].unique())
    missing = [k for k in folds if not layout.fold_done(k)]
    if missing:
        raise InputError(
            f"--gather: fold(s) {missing} of {out} are not finished; run `healnet train --fold K` for them"
        )
    return EXIT_OK, finish(layout, folds, {}, console)
