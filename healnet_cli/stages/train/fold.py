"""One fold of ``healnet train`` (or the model refitted on all patients): fit the fold's
preprocessing and bins on its training patients, train the network(s) or fit the closed-form
model, and write its bundle and test predictions into the run."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import torch
from torch import nn

from healnet_cli.artifacts.omics import CLINICAL
from healnet_cli.artifacts.run import HISTORY_FILE, WSI, RunLayout, member_subdir, state_paths
from healnet_cli.artifacts.run_bundle import write_bundle
from healnet_cli.artifacts.run_tables import OUT_OF_FOLD, write_predictions
from healnet_cli.core import atomic
from healnet_cli.core.console import Console
from healnet_cli.core.errors import InputError
from healnet_cli.data.batching import PatientTable, build_table
from healnet_cli.data.cohort import Cohort
from healnet_cli.data.ensemble import EnsembleModel
from healnet_cli.data.fitted import FitInputs, fit_model, is_fitted
from healnet_cli.data.inference import FoldModel, fold_bundle, predict_logits, predict_table
from healnet_cli.data.preprocess import OmicsPreprocess, fit_bag_scaler, fit_omics_preprocess
from healnet_cli.data.splits import Fold, inner_validation
from healnet_cli.data.survival import assign_bins, fit_bin_edges, fit_breslow
from healnet_cli.stages.train.config import TrainConfig
from healnet_cli.stages.train.loop import Dist, LoopSettings, Targets, train_fold

# Seed offset between ensemble members (initialisation, batch order, inner validation draw).
MEMBER_SEED_STRIDE = 7919
#: Seed index of the model refitted on all patients (folds use their index 0..K-1); logged as "refit".
REFIT_SEED_INDEX = 1000


@dataclass
class Trained:
    """A fitted fold: the model and what its bundle records about the fit."""

    fold_model: FoldModel
    history: list[dict[str, Any]]


def member_validation(fold: Fold, cohort: Cohort, cfg: TrainConfig, member: int) -> list[str]:
    """The inner validation set of ensemble member ``member`` (member 0 uses ``fold.val``): another
    stratified draw from the fold's training patients, never from its test patients."""
    if member == 0:
        return list(fold.val)
    return inner_validation(
        fold.train, cohort.labels["event"], cfg.val_fraction, cfg.seed + fold.index + MEMBER_SEED_STRIDE * member
    )


def remove_states(model_dir: Path) -> None:
    """Delete the resumable per-epoch states of a fold and of its ensemble members."""
    for state in state_paths(model_dir):
        state.unlink(missing_ok=True)


def targets(cohort: Cohort, ids: list[str], edges: list[float]) -> Targets:
    lab = cohort.labels.loc[ids]
    t = lab["time"].to_numpy(np.float64)
    return Targets(t, lab["event"].to_numpy(bool), assign_bins(t, edges))


def _vectors(table: PatientTable, modalities: list[str]) -> np.ndarray:
    return np.concatenate([table.vectors[m] for m in modalities if m != WSI], axis=1)


def model_specs(cohort: Cohort, pre: dict[str, Any]) -> dict[str, Any]:
    """The modality specs of a fold's model (vector widths = the fold's kept features)."""
    from healnet_cli.models import ModalitySpec

    return {
        m: ModalitySpec("bag", cohort.bag_dim()) if m == WSI else ModalitySpec("vector", max(1, len(pre[m].kept)))
        for m in cohort.modalities
    }


class FoldTrainer:
    """Trains and writes one fold (or, with ``refit=True`` folders, the refit model)."""

    def __init__(
        self,
        cfg: TrainConfig,
        cohort: Cohort,
        layout: RunLayout,
        device: torch.device,
        autocast,
        dist: Dist,
        console: Console,
        provenance: dict[str, Any],
    ):
        self.cfg, self.cohort, self.layout, self.device, self.autocast = cfg, cohort, layout, device, autocast
        self.dist, self.console, self.provenance = dist, console, provenance

    def preprocess(self, ids: list[str]) -> dict[str, Any]:
        """Omics preprocessing and the bag scaler, fitted on the patients ``ids`` only."""
        cfg, cohort = self.cfg, self.cohort
        pres = cohort.presence.loc[ids]
        pre: dict[str, Any] = {
            # --top-k thins wide omics tables; the few clinical covariates are all kept
            m: fit_omics_preprocess(
                cohort.omics[m].loc[pres.index[pres[m]]], clip_sd=cfg.clip, top_k=None if m == CLINICAL else cfg.top_k
            )
            for m in cohort.modalities
            if m != WSI
        }
        if WSI in cohort.modalities:
            scaler = fit_bag_scaler(cohort.load_bag(p)[0] for p in pres.index[pres[WSI]])
            if scaler is not None:
                pre[WSI] = scaler
        return pre

    def fit(self, fold: Fold, model_dir: Path) -> Trained:
        """Fit fold ``fold`` (its training patients only); per-epoch state and history in ``model_dir``."""
        cfg, cohort = self.cfg, self.cohort
        pre = self.preprocess(fold.train)
        lab = cohort.labels.loc[fold.train]
        edges = fit_bin_edges(lab["time"].to_numpy(), lab["event"].to_numpy(bool), cfg.n_bins)
        fm = FoldModel(
            fold.index,
            cfg.model,
            None,
            pre,
            edges,
            list(cohort.modalities),
            cfg.loss,
            None,
            cohort,
            self.device,
            provenance=self.provenance,
        )
        if is_fitted(cfg.model):
            return self._fit_closed_form(fold, fm, model_dir)
        members, histories = [], []
        for m in range(cfg.ensemble):
            val_ids = member_validation(fold, cohort, cfg, m)
            held = set(val_ids)
            fit_ids = [p for p in fold.train if p not in held]
            module, history = self._train_network(
                fold,
                pre,
                build_table(cohort, fit_ids, pre),
                targets(cohort, fit_ids, edges),
                build_table(cohort, val_ids, pre),
                targets(cohort, val_ids, edges),
                member_subdir(model_dir, m),
                member=m,
            )
            members.append(module)
            histories.append(history)
        fm.model = (
            members[0]
            if len(members) == 1
            else EnsembleModel(members, "logit" if cfg.loss == "cox" else "hazard").eval()
        )
        fm.training = {
            "best_epochs": [int(h[-1]["best_epoch"]) if h else -1 for h in histories],
            "epochs_run": [len(h) for h in histories],
        }
        if cfg.loss == "cox":
            all_t = build_table(cohort, fold.train, pre)
            all_y = targets(cohort, fold.train, edges)
            logits, _ = predict_logits(
                fm.model, all_t, batch_size=cfg.batch_size, device=self.device, autocast=self.autocast
            )
            fm.breslow = fit_breslow(logits[:, 0], all_y.time, all_y.event)
        return Trained(fm, histories[0])

    def _fit_closed_form(self, fold: Fold, fm: FoldModel, model_dir: Path) -> Trained:
        cfg, cohort, pre = self.cfg, self.cohort, fm.preprocess
        tables = [build_table(cohort, ids, pre) for ids in (fold.fit, fold.val, fold.train)]
        ys = [targets(cohort, ids, fm.bin_edges) for ids in (fold.fit, fold.val, fold.train)]
        xs = [_vectors(t, cohort.modalities) for t in tables]
        present = np.logical_and.reduce([tables[2].present[m] for m in cohort.modalities])
        inputs = FitInputs(
            xs[0],
            ys[0].time,
            ys[0].event,
            xs[1],
            ys[1].time,
            ys[1].event,
            xs[2],
            ys[2].time,
            ys[2].event,
            present_all=present,
            seed=cfg.seed * 1000 + fold.index,
        )
        impute = np.concatenate([cast(OmicsPreprocess, pre[m]).median for m in cohort.modalities if m != WSI])
        fitted = fit_model(cfg.model, model_specs(cohort, pre), cfg.n_bins, impute, inputs, cfg.model_hparams())
        fm.model, fm.breslow, fm.loss, fm.training = (
            fitted.model.to(self.device),
            fitted.breslow,
            "cox",
            dict(fitted.info),
        )
        if self.dist.is_main:
            atomic.write_text(model_dir / HISTORY_FILE, "".join(atomic.json_text(d) + "\n" for d in fitted.history))
        return Trained(fm, fitted.history)

    def _train_network(self, fold, pre, fit_t, fit_y, val_t, val_y, member_dir, member: int = 0):
        """One network; ensemble member ``member > 0`` gets its own seed (initialisation, batching)."""
        from healnet_cli.models import create_model

        cfg = self.cfg
        seed = cfg.seed + MEMBER_SEED_STRIDE * member
        torch.manual_seed(seed * 1000 + fold.index)
        try:
            model = create_model(cfg.model, model_specs(self.cohort, pre), cfg.n_bins, **cfg.model_hparams())
        except ValueError as exc:
            raise InputError(f"--model {cfg.model} / --hparam: {exc}") from exc
        model = model.to(self.device)
        wrapped: nn.Module = model
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            wrapped = DDP(model, device_ids=ids, find_unused_parameters=True)
        if cfg.compile:
            wrapped = cast(nn.Module, torch.compile(wrapped))  # compiling a module gives a module
        settings = LoopSettings(
            epochs=cfg.epochs,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            warmup_epochs=cfg.warmup_epochs,
            patience=cfg.patience,
            l1=cfg.l1,
            alpha=cfg.alpha,
            loss=cfg.loss,
            batch_size=cfg.batch_size,
            grad_accum=cfg.grad_accum,
            modality_dropout=cfg.modality_dropout,
            max_patches=cfg.max_patches,
            seed=seed,
            fold=fold.index,
            device=self.device,
            autocast=self.autocast,
            monitor=cfg.monitor,
        )
        where = "refit" if fold.index == REFIT_SEED_INDEX else f"fold {fold.index}"
        module, history = train_fold(
            wrapped,
            fit_t,
            fit_y,
            val_t,
            val_y,
            settings,
            fold_dir=member_dir,
            dist=self.dist,
            log=self._log(fold.index, member),
            console=self.console if self.dist.is_main else None,
            label=f"{where} member {member}" if self.cfg.ensemble > 1 else where,
        )
        return module.eval(), history

    def _log(self, index: int, member: int):
        """The loop's log lines on rank 0, tagged with the ensemble member; the refit says "refit"."""

        def log(message: str) -> None:
            if not self.dist.is_main:
                return
            if index == REFIT_SEED_INDEX:
                message = message.replace(f"fold {index}:", "refit:", 1)
            self.console.info(f"{message} [ensemble member {member}]" if member else message)

        return log

    def bundle(self, fm: FoldModel, **extra: Any) -> dict[str, Any]:
        return fold_bundle(fm, extra={"wsi_dim": self.cohort.wsi_dim, "seed": self.cfg.seed, **extra})

    def write(self, fold: Fold, trained: Trained) -> pd.DataFrame:
        """The fold's bundle and its test predictions (rank 0 writes); returns the predictions."""
        cohort, fm, layout = self.cohort, trained.fold_model, self.layout
        test = build_table(cohort, fold.test, fm.preprocess)
        frame, _ = predict_table(fm, test, batch_size=max(8, self.cfg.batch_size), autocast=self.autocast)
        frame.insert(1, "fold", fold.index)
        lab = cohort.labels.loc[fold.test]
        frame["time"] = lab["time"].to_numpy()
        frame["event"] = lab["event"].to_numpy(bool)
        for m in cohort.modalities:
            frame[f"has_{m}"] = test.present[m]
        if self.dist.is_main:
            write_bundle(layout.checkpoint(fold.index), self.bundle(fm, kind="fold"))
            meta = {
                "bin_edges": fm.bin_edges,
                "time_unit": cohort.time_unit,
                "model": fm.model_name,
                "modalities": fm.modalities,
                "loss": fm.loss,
                "fold": fold.index,
                "kind": OUT_OF_FOLD,
            }
            write_predictions(layout.fold_predictions(fold.index), frame, meta)
            remove_states(layout.fold_dir(fold.index))
        return frame


def median_best_epochs(trainings: list[dict[str, Any]]) -> int | None:
    """``round(median(best_epoch + 1))`` over every fold's networks (None when none recorded)."""
    epochs = [int(b) + 1 for t in trainings for b in t.get("best_epochs", []) if int(b) >= 0]
    return max(1, int(round(statistics.median(epochs)))) if epochs else None
