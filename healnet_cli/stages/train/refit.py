"""``healnet train --refit-all``: after the folds, one model on every patient of the cohort.

Same recipe as a fold (preprocessing, bins, model, ensemble members, seeds), fitted on all patients
with no inner validation set, so nothing to early-stop on:

* networks train for ``round(median(best_epoch + 1))`` epochs, the median over every fold's (and
  ensemble member's) early-stopping epoch — the number of epochs the cross-validation chose;
* a closed-form model (``coxnet``) uses its fitter's rule (coxnet: the median of the folds'
  chosen penalties).

The model is written to ``refit/checkpoint.pt`` (``kind: refit``, ``fold: -1``) with its history
beside it, and ``run.json → refit`` records the rule and the numbers; ``healnet predict --model
refit`` uses it. A rerun skips a finished refit; an interrupted one resumes from ``refit/state.pt``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from healnet_cli.artifacts.run import RunLayout, read_manifest, update_manifest
from healnet_cli.artifacts.run_bundle import read_bundle, write_bundle
from healnet_cli.core.console import Console
from healnet_cli.data.fitted import FITTERS, is_fitted
from healnet_cli.data.splits import Fold
from healnet_cli.stages.train.config import TrainConfig
from healnet_cli.stages.train.fold import REFIT_SEED_INDEX, FoldTrainer, median_best_epochs, remove_states

EPOCH_RULE = "round(median over folds and ensemble members of (best early-stopping epoch + 1)); no inner validation"


def refit_recipe(cfg: TrainConfig, layout: RunLayout) -> tuple[TrainConfig, dict[str, Any]]:
    """The refit's options (epochs or hyper-parameters from the folds) and what run.json records."""
    manifest = read_manifest(layout)
    trainings = [dict(read_bundle(layout.checkpoint(k)).get("training") or {}) for k in manifest.folds]
    if is_fitted(cfg.model):
        fitter = FITTERS[cfg.model]
        hparams = fitter.refit_hparams(trainings, cfg.model_hparams())
        return (
            dataclasses.replace(cfg, hparams=hparams, val_fraction=0.0),
            {"rule": fitter.refit_rule, "hparams": hparams, "folds": [t for t in trainings]},
        )
    epochs = median_best_epochs(trainings)
    note = EPOCH_RULE
    if epochs is None:  # folds of a schema-1 run record no early-stopping epochs
        epochs, note = cfg.epochs, "--epochs (the folds record no early-stopping epoch)"
    best = [b for t in trainings for b in t.get("best_epochs", [])]
    return (
        dataclasses.replace(cfg, epochs=epochs, val_fraction=0.0, patience=epochs + 1),
        {"rule": note, "epochs": epochs, "fold_best_epochs": best},
    )


def refit_all(cfg: TrainConfig, trainer: FoldTrainer, layout: RunLayout, console: Console) -> dict[str, Any]:
    """Train (or skip, when done) the model on all patients; returns ``run.json → refit``."""
    if layout.refit_checkpoint.is_file():
        console.info("refit: already trained, skipped")
        return dict(read_manifest(layout).refit or {})
    rcfg, record = refit_recipe(cfg, layout)
    cohort = trainer.cohort
    what = f"{record['epochs']} epochs" if "epochs" in record else record["rule"]
    console.info(f"refit on all {len(cohort.patients)} patients ({what})")
    refit_trainer = FoldTrainer(
        rcfg, cohort, layout, trainer.device, trainer.autocast, trainer.dist, console, trainer.provenance
    )
    trained = refit_trainer.fit(Fold(REFIT_SEED_INDEX, list(cohort.patients), []), layout.refit_dir)
    fm = trained.fold_model
    fm.fold = -1
    record = {
        **record,
        "n_patients": len(cohort.patients),
        "n_events": int(cohort.labels["event"].sum()),
        "bin_edges": [float(e) for e in fm.bin_edges],
    }
    fm.training = {**fm.training, **{k: v for k, v in record.items() if k in ("epochs", "rule")}}
    if trainer.dist.is_main:
        write_bundle(layout.refit_checkpoint, refit_trainer.bundle(fm, kind="refit"))
        remove_states(layout.refit_dir)
        update_manifest(layout, refit=record)
    console.info(f"refit: {layout.refit_checkpoint}")
    return record
