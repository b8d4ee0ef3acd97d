"""What the report says about the data and the training behind the predictions: patients per
modality pattern (from the predictions' ``has_<m>`` columns) and the training settings (the run's
``config.yaml`` options, ``run.json`` for what it lacks, and each fold's ``history.jsonl`` for the
epochs trained and where early stopping kept the weights)."""

from __future__ import annotations

import json
from typing import Any

from healnet_cli.artifacts.run import HISTORY_FILE, RunLayout, read_manifest
from healnet_cli.core.errors import InputError
from healnet_cli.stages.evaluate.run_folder import RunData

#: (option, label) pairs shown in the report, in this order; options a run does not record are left out.
SETTINGS = (
    ("model", "model"),
    ("modalities", "modalities"),
    ("loss", "loss"),
    ("n_bins", "time bins"),
    ("alpha", "alpha (uncensored weight)"),
    ("epochs", "max epochs"),
    ("ensemble", "seed ensemble per fold"),
    ("monitor", "early stopping monitors"),
    ("patience", "patience (epochs)"),
    ("val_fraction", "inner validation fraction"),
    ("lr", "learning rate"),
    ("warmup_epochs", "warm-up epochs"),
    ("batch_size", "batch size"),
    ("weight_decay", "weight decay"),
    ("l1", "L1 penalty"),
    ("modality_dropout", "modality dropout"),
    ("max_patches", "max patches per bag (training)"),
    ("seed", "seed"),
    ("hparams", "model hyper-parameters"),
)


def modality_patterns(run: RunData) -> dict[str, int]:
    """Scored patients per modality pattern, e.g. ``{"rna+cnv+mut": 350, "rna+cnv": 23}``, the
    most frequent first (modalities in the run's order; ``none`` for a patient with none)."""
    p = run.predictions
    mods = [m for m in run.modalities if f"has_{m}" in p.columns]
    if not mods:
        return {}
    keys = (
        p[[f"has_{m}" for m in mods]]
        .astype(bool)
        .apply(lambda r: "+".join(m for m in mods if r[f"has_{m}"]) or "none", axis=1)
    )
    counts = keys.value_counts()
    return {str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}


def _history(path: Any) -> dict[str, int] | None:
    try:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return None
    if not lines:
        return None
    last = lines[-1]
    return {
        "epochs": len(lines),
        **({"best_epoch": int(last["best_epoch"])} if last.get("best_epoch") is not None else {}),
    }


def fold_histories(run: RunData) -> dict[str, list[dict[str, int]]]:
    """``fold -> [{"epochs": run, "best_epoch": kept}, ...]`` per ensemble member, from the
    folds' ``history.jsonl`` files (folds without one are left out)."""
    layout = RunLayout(run.path)
    out: dict[str, list[dict[str, int]]] = {}
    for k in run.folds:
        members, member = [], 0
        while (entry := _history(layout.member_dir(k, member) / HISTORY_FILE)) is not None:
            members.append(entry)
            member += 1
        if members:
            out[str(k)] = members
    return out


def training_settings(run: RunData) -> dict[str, Any]:
    """The settings the run was trained with (``{}`` for external predictions: see the training
    run's own report) and the folds' early-stopping outcome."""
    if run.external is not None:
        return {}
    options = dict(run.options)
    if not options:
        try:
            options = dict(read_manifest(RunLayout(run.path)).defining_options)
        except InputError:
            options = {}
    settings = {key: options[key] for key, _ in SETTINGS if options.get(key) is not None}
    return {"settings": settings, "folds": fold_histories(run)}


def settings_rows(info: dict[str, Any]) -> list[list[str]]:
    """``[label, value]`` rows of the report's training table."""
    labels = dict(SETTINGS)
    rows = []
    for key, value in info.get("settings", {}).items():
        if isinstance(value, dict):
            text = ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "defaults"
        elif isinstance(value, (list, tuple)):
            text = ", ".join(map(str, value))
        else:
            text = str(value)
        rows.append([labels[key], text])
    return rows


def early_stopping_text(info: dict[str, Any]) -> list[str]:
    """One line per fold: epochs trained and the epoch whose weights were kept, per member."""
    out = []
    for k, members in info.get("folds", {}).items():
        parts = [
            f"{m['epochs']} epochs, kept epoch {m['best_epoch']}" if "best_epoch" in m else f"{m['epochs']} epochs"
            for m in members
        ]
        out.append(
            f"fold {k}: " + "; ".join(parts if len(parts) == 1 else [f"member {i}: {t}" for i, t in enumerate(parts)])
        )
    return out
