"""Orchestration of ``healnet train``: cohort → folds → per-fold training → run folder."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from healnet_cli.core import atomic
from healnet_cli.core.config import write_resolved_config
from healnet_cli.core.console import Console
from healnet_cli.core.device import resolve_device, resolve_precision
from healnet_cli.core.errors import EXIT_OK, EXIT_PARTIAL, HealnetError, InputError, one_line
from healnet_cli.core.fingerprint import file_fingerprint
from healnet_cli.core.hpc import available_cpus
from healnet_cli.data.batching import PatientTable, build_table
from healnet_cli.data.cohort import WSI, Cohort, load_cohort
from healnet_cli.data.coxnet import fit_coxnet
from healnet_cli.data.ensemble import EnsembleModel
from healnet_cli.data.inference import COXNET, FoldModel, fold_checkpoint, predict_logits, predict_table
from healnet_cli.data.preprocess import fit_bag_scaler, fit_omics_preprocess
from healnet_cli.data.splits import Fold, folds_from_frame, inner_validation, make_folds, read_splits_dir, splits_frame
from healnet_cli.data.survival import assign_bins, fit_bin_edges, fit_breslow
from healnet_cli.stages.train.config import TrainConfig, check_config
from healnet_cli.stages.train.loop import Dist, LoopSettings, Targets, train_fold
from healnet_cli.stages.train.outputs import PREDICTIONS, environment, gather_predictions, summarise, write_parquet, write_summary


# Seed offset between ensemble members (initialisation, batch order, inner validation draw).
MEMBER_SEED_STRIDE = 7919


def default_out(cfg: TrainConfig) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.model}-{'+'.join(cfg.modalities)}-{stamp}"


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
    """Intra-op threads for CPU training, or None to leave torch's setting (CUDA, or the user set
    ``OMP_NUM_THREADS``). Omics-only runs use 1: their tensors are tiny, so every extra thread only
    adds synchronisation (EHPAL on BLCA: 139 ms per step with 1 thread, 349 ms with 2 under
    ``OMP_WAIT_POLICY=PASSIVE``). Runs with WSI bags use the job's CPUs."""
    if device.type != "cpu" or "OMP_NUM_THREADS" in os.environ:
        return None
    return available_cpus() if WSI in cfg.modalities else 1


def plan_folds(cfg: TrainConfig, cohort: Cohort, out: Path, console: Console) -> tuple[list[Fold], dict[str, Any]]:
    """Folds with inner validation sets; reused from ``splits.csv`` when the run folder has one."""
    existing = out / "splits.csv"
    if existing.is_file():
        return folds_from_frame(pd.read_csv(existing, dtype={"patient_id": str})), {}
    info: dict[str, Any] = {}
    if cfg.splits is not None:
        folds, report = read_splits_dir(cfg.splits, cohort.patients)
        for k in report.dropped:
            if report.dropped[k]:
                console.warn(f"splits_{k}.csv: {len(report.dropped[k])} cohort patient(s) in neither column are left out of fold {k}")
            if report.unknown[k]:
                console.warn(f"splits_{k}.csv: {len(report.unknown[k])} id(s) not in the cohort are ignored (e.g. {report.unknown[k][0]})")
        info = {"dropped_by_splits": report.dropped, "unknown_in_splits": report.unknown}
    else:
        folds = make_folds(cohort.labels, cfg.folds, cfg.seed)
    for f in folds:
        f.val = inner_validation(f.train, cohort.labels["event"], cfg.val_fraction, cfg.seed + f.index)
    return folds, info


def member_validation(fold: Fold, cohort: Cohort, cfg: TrainConfig, member: int) -> list[str]:
    """The inner validation set of ensemble member ``member`` (member 0 uses ``fold.val``): another
    stratified draw from the fold's training patients, never from its test patients."""
    if member == 0:
        return list(fold.val)
    return inner_validation(fold.train, cohort.labels["event"], cfg.val_fraction, cfg.seed + fold.index + MEMBER_SEED_STRIDE * member)


def _remove_states(fold_dir: Path) -> None:
    """Delete the resumable per-epoch states of a fold and of its ensemble members."""
    (fold_dir / "state.pt").unlink(missing_ok=True)
    for state in fold_dir.glob("member_*/state.pt"):
        state.unlink(missing_ok=True)


def _targets(cohort: Cohort, ids: list[str], edges: list[float]) -> Targets:
    lab = cohort.labels.loc[ids]
    t = lab["time"].to_numpy(np.float64)
    return Targets(t, lab["event"].to_numpy(bool), assign_bins(t, edges))


def _vectors(table: PatientTable, modalities: list[str]) -> np.ndarray:
    return np.concatenate([table.vectors[m] for m in modalities if m != WSI], axis=1)


class FoldTrainer:
    """Trains and writes one fold."""

    def __init__(self, cfg: TrainConfig, cohort: Cohort, out: Path, device: torch.device, autocast, dist: Dist, console: Console):
        self.cfg, self.cohort, self.out, self.device, self.autocast = cfg, cohort, out, device, autocast
        self.dist, self.console = dist, console

    def fit(self, fold: Fold) -> FoldModel:
        cfg, cohort = self.cfg, self.cohort
        pres = cohort.presence.loc[fold.train]
        pre = {
            m: fit_omics_preprocess(cohort.omics[m].loc[pres.index[pres[m]]], clip_sd=cfg.clip, top_k=cfg.top_k)
            for m in cohort.modalities if m != WSI
        }
        if WSI in cohort.modalities:
            scaler = fit_bag_scaler(cohort.load_bag(p)[0] for p in pres.index[pres[WSI]])
            if scaler is not None:
                pre[WSI] = scaler
        lab = cohort.labels.loc[fold.train]
        edges = fit_bin_edges(lab["time"].to_numpy(), lab["event"].to_numpy(bool), cfg.n_bins)
        fit_t, val_t = build_table(cohort, fold.fit, pre), build_table(cohort, fold.val, pre)
        fit_y, val_y = _targets(cohort, fold.fit, edges), _targets(cohort, fold.val, edges)
        fold_dir = self.out / f"fold_{fold.index}"
        fm = FoldModel(fold.index, cfg.model, None, pre, edges, list(cohort.modalities), cfg.loss, None, cohort, self.device)
        if cfg.model == COXNET:
            all_t = build_table(cohort, fold.train, pre)
            all_y = _targets(cohort, fold.train, edges)
            fm.model, path = fit_coxnet(
                _vectors(fit_t, cohort.modalities), fit_y.time, fit_y.event,
                _vectors(val_t, cohort.modalities), val_y.time, val_y.event,
                _vectors(all_t, cohort.modalities), all_y.time, all_y.event, cfg.model_hparams(),
            )
            if self.dist.is_main:
                atomic.write_text(fold_dir / "history.jsonl", "".join(json.dumps(d) + "\n" for d in path))
            return fm
        members = [self._train_network(fold, pre, fit_t, fit_y, val_t, val_y, fold_dir)]
        for m in range(1, cfg.ensemble):
            val_ids = member_validation(fold, cohort, cfg, m)
            held = set(val_ids)
            fit_ids = [p for p in fold.train if p not in held]
            members.append(self._train_network(
                fold, pre, build_table(cohort, fit_ids, pre), _targets(cohort, fit_ids, edges),
                build_table(cohort, val_ids, pre), _targets(cohort, val_ids, edges), fold_dir / f"member_{m}", member=m,
            ))
        fm.model = members[0] if len(members) == 1 else EnsembleModel(members, "logit" if cfg.loss == "cox" else "hazard").eval()
        if cfg.loss == "cox":
            all_t = build_table(cohort, fold.train, pre)
            all_y = _targets(cohort, fold.train, edges)
            logits, _ = predict_logits(fm.model, all_t, batch_size=cfg.batch_size, device=self.device, autocast=self.autocast)
            fm.breslow = fit_breslow(logits[:, 0], all_y.time, all_y.event)
        return fm

    def _train_network(self, fold, pre, fit_t, fit_y, val_t, val_y, fold_dir, member: int = 0):
        """One network; ensemble member ``member > 0`` gets its own seed (initialisation, batching)."""
        from healnet_cli.models import ModalitySpec, create_model

        cfg, cohort = self.cfg, self.cohort
        specs = {
            m: ModalitySpec("bag", int(cohort.wsi_dim)) if m == WSI else ModalitySpec("vector", max(1, len(pre[m].kept)))
            for m in cohort.modalities
        }
        seed = cfg.seed + MEMBER_SEED_STRIDE * member
        torch.manual_seed(seed * 1000 + fold.index)
        try:
            model = create_model(cfg.model, specs, cfg.n_bins, **cfg.model_hparams())
        except ValueError as exc:
            raise InputError(f"--model {cfg.model} / --hparam: {exc}") from exc
        model = model.to(self.device)
        wrapped = model
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            wrapped = DDP(model, device_ids=ids, find_unused_parameters=True)
        if cfg.compile:
            wrapped = torch.compile(wrapped)
        settings = LoopSettings(
            epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_epochs=cfg.warmup_epochs,
            patience=cfg.patience, l1=cfg.l1, alpha=cfg.alpha, loss=cfg.loss, batch_size=cfg.batch_size,
            grad_accum=cfg.grad_accum, modality_dropout=cfg.modality_dropout, max_patches=cfg.max_patches,
            seed=seed, fold=fold.index, device=self.device, autocast=self.autocast, monitor=cfg.monitor,
        )
        log = self.console.info if self.dist.is_main else (lambda _: None)
        if member:
            log_fold = log
            log = lambda msg: log_fold(f"{msg} [ensemble member {member}]")  # noqa: E731
        module, _ = train_fold(wrapped, fit_t, fit_y, val_t, val_y, settings, fold_dir=fold_dir, dist=self.dist, log=log)
        return module.eval()

    def write(self, fold: Fold, fm: FoldModel) -> pd.DataFrame:
        cohort, fold_dir = self.cohort, self.out / f"fold_{fold.index}"
        test = build_table(cohort, fold.test, fm.preprocess)
        frame, _ = predict_table(fm, test, batch_size=max(8, self.cfg.batch_size), autocast=self.autocast)
        frame.insert(1, "fold", fold.index)
        lab = cohort.labels.loc[fold.test]
        frame["time"] = lab["time"].to_numpy()
        frame["event"] = lab["event"].to_numpy(bool)
        for m in cohort.modalities:
            frame[f"has_{m}"] = test.present[m]
        if self.dist.is_main:
            payload = fold_checkpoint(fm, extra={"wsi_dim": cohort.wsi_dim, "seed": self.cfg.seed})
            with atomic.atomic_path(fold_dir / "checkpoint.pt") as tmp:
                torch.save(payload, tmp)
            meta = {"bin_edges": fm.bin_edges, "time_unit": cohort.time_unit, "model": fm.model_name,
                    "modalities": fm.modalities, "loss": fm.loss, "fold": fold.index}
            write_parquet(fold_dir / PREDICTIONS, frame, meta)
            _remove_states(fold_dir)
        return frame


def check_hparams(cfg: TrainConfig, cohort: Cohort) -> None:
    """Build the model once on the cohort's dimensions so a bad ``--hparam`` fails before any work."""
    if cfg.model == COXNET:
        from healnet_cli.data.coxnet import COXNET_DEFAULTS

        unknown = sorted(set(cfg.model_hparams()) - set(COXNET_DEFAULTS) - {"alpha"})
        if unknown:
            raise InputError(f"--hparam: unknown hyperparameter(s) {unknown} for coxnet; valid keys: {sorted([*COXNET_DEFAULTS, 'alpha'])}")
        return
    from healnet_cli.models import ModalitySpec, create_model

    specs = {m: ModalitySpec("bag", int(cohort.wsi_dim)) if m == WSI else ModalitySpec("vector", max(1, cohort.omics[m].shape[1]))
             for m in cohort.modalities}
    try:
        create_model(cfg.model, specs, cfg.n_bins, **cfg.model_hparams())
    except (ValueError, TypeError) as exc:
        raise InputError(f"--model {cfg.model} / --hparam: {exc}") from exc


def _fold_done(out: Path, k: int) -> bool:
    return (out / f"fold_{k}" / "checkpoint.pt").is_file() and (out / f"fold_{k}" / PREDICTIONS).is_file()


def _write_run_files(cfg: TrainConfig, cohort: Cohort, out: Path, folds: list[Fold], info: dict, options: dict, sources, dist: Dist) -> None:
    opts = {**options, **cfg.as_dict(), "out": str(out), "extractor": cohort.extractor}
    write_resolved_config(out, opts, command="train", sources=sources)
    prints = dict(cohort.fingerprints)
    if cfg.splits is not None:
        prints.update({str(p): file_fingerprint(p) for p in sorted(Path(cfg.splits).glob("splits_*.csv"))})
    env = environment({"seed": cfg.seed, "fold_init": {str(f.index): cfg.seed * 1000 + f.index for f in folds}}, prints,
                      {"world_size": dist.world, "device": str(cfg.device), "torch_threads": torch.get_num_threads()})
    atomic.write_json(out / "env.json", env)
    labels = cohort.labels.reset_index().rename(columns={"index": "patient_id"})
    write_parquet(out / "labels.parquet", labels, {"time_unit": cohort.time_unit})
    atomic.write_json(out / "cohort.json", {
        "n_patients": len(cohort.patients), "n_events": int(cohort.labels["event"].sum()),
        "modalities": cohort.modalities, "patterns": cohort.pattern_counts(), "require_all": cfg.require_all,
        "extractor": cohort.extractor, "time_unit": cohort.time_unit, "workdir": str(cohort.workdir), **info,
    })
    if not (out / "splits.csv").is_file():
        atomic.write_text(out / "splits.csv", splits_frame(folds).to_csv(index=False))


def run_train(cfg: TrainConfig, console: Console, *, options: dict[str, Any] | None = None, sources: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """Train every (or one, ``cfg.fold``) fold; return the exit code and the summary."""
    check_config(cfg)
    dist = init_distributed(cfg.device)
    if not dist.is_main:
        console = Console(quiet=True)  # rank 0 reports
    if dist.world > 1 and cfg.out is None:
        raise InputError("torchrun: pass --out so that every process writes the same run folder")
    device = resolve_device(cfg.device)
    if dist.world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    autocast = resolve_precision(cfg.precision, device)
    threads = cpu_threads(cfg, device)
    if threads is not None:
        torch.set_num_threads(threads)
    cohort = load_cohort(cfg.workdir, cfg.modalities, extractor=cfg.extractor, require_all=cfg.require_all)
    check_hparams(cfg, cohort)
    out = Path(cfg.out) if cfg.out is not None else default_out(cfg)
    if (out / "splits.csv").is_file() and not cfg.resume and cfg.fold is None:
        raise InputError(f"--out {out} already holds a run; pass --resume to continue it or choose a new --out")
    if not cfg.resume and cfg.fold is None:
        for k_dir in out.glob("fold_*"):
            _remove_states(k_dir)
    folds, info = plan_folds(cfg, cohort, out, console)
    if cfg.fold is not None and cfg.fold >= len(folds):
        raise InputError(f"--fold {cfg.fold}: the run has folds 0..{len(folds) - 1}")
    console.info(f"cohort: {len(cohort.patients)} patients, {int(cohort.labels['event'].sum())} events; "
                 + ", ".join(f"{k}: {v}" for k, v in cohort.pattern_counts().items()))
    if dist.is_main:
        _write_run_files(cfg, cohort, out, folds, info, options or {}, sources, dist)
    _barrier(dist)
    trainer = FoldTrainer(cfg, cohort, out, device, autocast, dist, console)
    failed: dict[int, str] = {}
    for fold in folds:
        if cfg.fold is not None and fold.index != cfg.fold:
            continue
        if cfg.resume and _fold_done(out, fold.index):
            console.info(f"fold {fold.index}: already finished, skipped")
            continue
        if cfg.fold is not None and not cfg.resume:
            _remove_states(out / f"fold_{fold.index}")
        console.info(f"fold {fold.index}: {len(fold.fit)} train, {len(fold.val)} inner validation, {len(fold.test)} test patients")
        try:
            fm = trainer.fit(fold)
            trainer.write(fold, fm)
        except InputError:
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
    summary = finish(out, [f.index for f in folds], failed, console, write=dist.is_main)
    code = EXIT_PARTIAL if failed else EXIT_OK
    return code, summary


def finish(out: Path, folds: list[int], failed: dict[int, str], console: Console, *, write: bool = True) -> dict[str, Any]:
    """Gather predictions and write the summary when every fold is done; print it."""
    if not write:
        return {}
    failures_path = out / "failures.json"
    if write and failed:
        previous = {}
        if failures_path.is_file():
            previous = json.loads(failures_path.read_text())
        atomic.write_json(failures_path, {**previous, **{str(k): v for k, v in failed.items()}})
    frame = gather_predictions(out, folds)
    if frame is None:
        done = [k for k in folds if _fold_done(out, k)]
        console.info(f"{len(done)}/{len(folds)} folds finished; predictions.parquet is gathered when all are done "
                     f"(or with `healnet train --gather --out {out}`)")
        return {"folds_done": done, "failed": {str(k): v for k, v in failed.items()}, "out": str(out)}
    if failures_path.is_file() and not failed:
        failures_path.unlink()
    import yaml

    opts = (yaml.safe_load((out / "config.yaml").read_text()) or {}).get("options", {})
    summary = summarise(frame, failed, {"model": opts.get("model"), "modalities": opts.get("modalities"), "out": str(out)})
    write_summary(out, summary)
    for row in summary["folds"]:
        console.info(f"fold {row['fold']}: c-index {row['cindex']:.3f} (n={row['n_test']}, events={row['n_events']})")
    console.info(f"c-index {summary['cindex_mean']:.3f} ± {summary['cindex_sd']:.3f} over {len(summary['folds'])} folds -> {out}")
    return summary


def gather_run(out: Path, console: Console) -> tuple[int, dict[str, Any]]:
    """``healnet train --gather``: build predictions.parquet + summary from finished folds."""
    if not (out / "splits.csv").is_file():
        raise InputError(f"--gather: {out} is not a run folder (no splits.csv); pass the --out of `healnet train`")
    folds = sorted(pd.read_csv(out / "splits.csv")["fold"].unique().tolist())
    missing = [k for k in folds if not _fold_done(out, k)]
    if missing:
        raise InputError(f"--gather: fold(s) {missing} of {out} are not finished; run `healnet train --fold K` for them")
    return EXIT_OK, finish(out, [int(k) for k in folds], {}, console)
