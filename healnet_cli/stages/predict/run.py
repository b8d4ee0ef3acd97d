"""``healnet predict RUN --workdir W``: a trained run applied to the patients of another workspace.

Every patient of ``W`` with at least one of the run's modalities is predicted, by the fold ensemble
(each fold's model with its own preprocessing; hazards averaged on the time bins fitted on every
training patient, ``run.json → bin_edges_all``; risk = the mean of the folds' risks), by one fold
(``--fold K``: that fold's own bins, exactly ``predict_patients``), or by the refit model
(``--model refit``). Compatibility of the
features and tables is checked first (:mod:`~healnet_cli.stages.predict.compat`); nothing is
written when it fails. Output: :mod:`healnet_cli.artifacts.run_external`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from healnet_cli.artifacts.omics import list_modalities, modality_path
from healnet_cli.artifacts.run import WSI, RunLayout, RunManifest, read_manifest, require_run
from healnet_cli.artifacts.run_bundle import read_bundle
from healnet_cli.artifacts.run_external import default_predict_dir, prepare_predict_dir, write_external
from healnet_cli.artifacts.run_tables import read_labels, read_oof_predictions, risk_cutoffs
from healnet_cli.core.config import plain
from healnet_cli.core.console import Console
from healnet_cli.core.errors import EXIT_OK, InputError
from healnet_cli.core.fingerprint import combine, file_fingerprint
from healnet_cli.core.workspace import Workspace
from healnet_cli.data.cohort import Cohort, load_cohort
from healnet_cli.stages.predict.compat import check_omics, check_wsi
from healnet_cli.stages.predict.config import REFIT, PredictConfig


@dataclass
class Member:
    """One model of the prediction: a fold's bundle or the refit's."""

    name: str
    path: Path
    payload: dict[str, Any]


@dataclass
class Checks:
    """What the compatibility checks found."""

    features: dict[str, dict[str, Any]] = field(default_factory=dict)
    wsi: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def select_members(layout: RunLayout, manifest: RunManifest, cfg: PredictConfig) -> list[Member]:
    """The bundles that predict: the refit, one fold, or every fold of the run.

    Raises
    ------
    InputError
        The refit was not trained, the fold does not exist, or some fold is unfinished.
    """
    if cfg.model == REFIT:
        if not layout.refit_checkpoint.is_file():
            raise InputError(
                f"{layout.refit_checkpoint} not found: the run has no refit model; train it with "
                f"`healnet train --refit-all --resume --out {layout.root}` (and the run's options)"
            )
        return [Member("refit", layout.refit_checkpoint, read_bundle(layout.refit_checkpoint))]
    folds = manifest.folds or sorted(layout.fold_dirs())
    if cfg.fold is not None:
        if not layout.checkpoint(cfg.fold).is_file():
            raise InputError(
                f"--fold {cfg.fold}: {layout.checkpoint(cfg.fold)} not found; folds with a checkpoint: "
                f"{layout.folds_with_checkpoint()}"
            )
        folds = [cfg.fold]
    missing = [k for k in folds if not layout.checkpoint(k).is_file()]
    if missing or not folds:
        raise InputError(
            f"{layout.root}: fold(s) {missing or 'none'} have no checkpoint; finish the run "
            "(`healnet train --resume`) or predict with one fold (--fold K)"
        )
    return [Member(layout.fold_dir(k).name, layout.checkpoint(k), read_bundle(layout.checkpoint(k))) for k in folds]


def _modalities(cfg: PredictConfig, run_mods: list[str], ws: Workspace, warnings: list[str]) -> list[str]:
    """The run's modalities to predict from: requested ones (all must exist), else those ``ws`` has."""
    never = [m for m in cfg.modalities if m not in run_mods]
    if never:
        raise InputError(
            f"--modalities {','.join(cfg.modalities)}: the run was trained on {', '.join(run_mods)}; "
            f"it never saw {', '.join(never)}"
        )
    omics = set(list_modalities(ws.omics_dir)) if ws.omics_dir.is_dir() else set()
    have = {m: (bool(ws.extractors()) if m == WSI else m in omics) for m in run_mods}
    if cfg.modalities:
        lacking = [m for m in cfg.modalities if not have[m]]
        if lacking:
            where = {m: (ws.features_root if m == WSI else modality_path(ws.omics_dir, m)) for m in lacking}
            raise InputError(
                f"--modalities: {', '.join(f'{m} (no {p})' for m, p in where.items())} in the workspace {ws.root}"
            )
        return list(cfg.modalities)
    for m in run_mods:
        if not have[m]:
            warnings.append(
                f"{m}: not in the external workspace "
                f"({ws.features_root if m == WSI else modality_path(ws.omics_dir, m)}); "
                "every patient is predicted without it"
            )
    use = [m for m in run_mods if have[m]]
    if not use:
        raise InputError(
            f"workspace {ws.root} has none of the run's modalities ({', '.join(run_mods)}); "
            "build them with `healnet tile`/`healnet extract` or `healnet omics`"
        )
    return use


def external_cohort(cfg: PredictConfig, manifest: RunManifest, run_mods: list[str], warnings: list[str]) -> Cohort:
    """The external patients with at least one usable modality (labels optional)."""
    ws = Workspace.at(cfg.workdir)
    if not ws.root.is_dir():
        raise InputError(f"--workdir {ws.root}: not found; pass the external cohort's workspace")
    use = _modalities(cfg, run_mods, ws, warnings)
    extractor = cfg.extractor
    if extractor is None and WSI in use and manifest.extractor in ws.extractors():
        extractor = manifest.extractor
    return load_cohort(ws.root, use, extractor=extractor, require_labels=False)


def run_wsi_provenance(manifest: RunManifest, members: list[Member]) -> dict[str, Any]:
    prov = (manifest.features or {}).get(WSI) or (members[0].payload.get("provenance") or {}).get(WSI)
    if not prov:
        raise InputError(
            "the run records no provenance of its WSI features (a run written before healnet recorded it), so "
            "features of another workspace cannot be checked; retrain the run with this healnet, or predict "
            "without wsi (--modalities with its omics tables)"
        )
    return dict(prov)


def check_inputs(members: list[Member], cohort: Cohort, manifest: RunManifest, cfg: PredictConfig) -> Checks:
    """Every compatibility check (before any prediction)."""
    checks = Checks()
    if WSI in cohort.modalities:
        paths = [ref.path for refs in cohort.slides.values() for ref in refs]
        checks.wsi, checks.warnings = check_wsi(run_wsi_provenance(manifest, members), paths)
        checks.wsi["folder"] = cohort.extractor
        dims = {int(m.payload.get("wsi_dim") or 0) for m in members} - {0}
        if cohort.wsi_dim is not None and dims and cohort.wsi_dim not in dims:
            raise InputError(
                f"features/{cohort.extractor}: {cohort.wsi_dim}-dimensional features, the run's model takes "
                f"{sorted(dims)[0]}; extract with the run's extractor"
            )
    omics_dir = Workspace.at(cohort.workdir).omics_dir
    for m in cohort.modalities:
        if m != WSI:
            kept = [str(f) for member in members for f in member.payload["preprocess"][m]["kept"]]
            checks.features[m] = check_omics(
                m, kept, cohort.omics[m], modality_path(omics_dir, m), cfg.min_feature_overlap
            )
            if checks.features[m]["n_imputed"]:
                f = checks.features[m]
                checks.warnings.append(
                    f"{m}: {f['n_imputed']} of the run's {f['n_features']} features are missing in "
                    "the external table and imputed with the training medians"
                )
    return checks


def _time_unit(layout: RunLayout, manifest: RunManifest) -> str:
    if manifest.time_unit and manifest.time_unit != "unknown":
        return manifest.time_unit
    try:
        return str(read_oof_predictions(layout)[1].get("time_unit") or "unknown")
    except InputError:
        return "unknown"


def check_time_unit(cohort: Cohort, unit: str) -> None:
    labelled = bool(cohort.labels["time"].notna().any())
    if labelled and "unknown" not in (unit, cohort.time_unit) and cohort.time_unit != unit:
        raise InputError(
            f"{Workspace.at(cohort.workdir).omics_dir}: the external labels are in {cohort.time_unit}, the run's "
            f"in {unit}; import the external labels in {unit} (`healnet omics labels`) and predict again"
        )


def _cutoffs(layout: RunLayout, manifest: RunManifest) -> dict[str, list[float]]:
    if manifest.risk_cutoffs:
        return dict(manifest.risk_cutoffs)
    frame = read_oof_predictions(layout)[0]  # a schema-1 run: the same rule, from its predictions
    return risk_cutoffs(frame["risk"].to_numpy(float))


def _shared(layout: RunLayout, cohort: Cohort) -> dict[str, Any]:
    try:
        training = set(read_labels(layout).index)
    except InputError:
        return {"n": 0, "ids": [], "note": "the run has no labels.parquet: not checked"}
    ids = sorted(training & set(cohort.patients))
    return {"n": len(ids), "ids": ids}


@dataclass
class Plan:
    """Everything checked before the first prediction."""

    layout: RunLayout
    manifest: RunManifest
    members: list[Member]
    cohort: Cohort
    time_unit: str
    checks: Checks
    shared: dict[str, Any]
    warnings: list[str]
    what: str

    @property
    def modalities(self) -> list[str]:
        return [str(m) for m in self.members[0].payload["modalities"]]


def plan_prediction(cfg: PredictConfig) -> Plan:
    """Read the run, pick the models, load the external cohort and run every check (exit 2 on failure)."""
    layout = require_run(cfg.run)
    manifest = read_manifest(layout)
    members = select_members(layout, manifest, cfg)
    warnings: list[str] = []
    cohort = external_cohort(cfg, manifest, [str(m) for m in members[0].payload["modalities"]], warnings)
    unit = _time_unit(layout, manifest)
    check_time_unit(cohort, unit)
    checks = check_inputs(members, cohort, manifest, cfg)
    shared = _shared(layout, cohort)
    warnings += checks.warnings
    if shared["n"]:
        warnings.append(
            f"{shared['n']} patient(s) are also in the training cohort of the run (e.g. {shared['ids'][0]}): "
            "for them this is not an external validation"
        )
    what = (
        "refit model"
        if cfg.model == REFIT
        else (f"fold {cfg.fold}" if cfg.fold is not None else f"fold ensemble of {len(members)} folds")
    )
    return Plan(layout, manifest, members, cohort, unit, checks, shared, warnings, what)


def _record(plan: Plan, edges: list[float], options: dict[str, Any]) -> dict[str, Any]:
    """``predict.json``'s content (see :mod:`healnet_cli.artifacts.run_external`)."""
    layout, cohort, members = plan.layout, plan.cohort, plan.members
    prints = [file_fingerprint(p) for p in (layout.manifest, layout.config) if p.is_file()]
    coverage = {
        m: {
            "n_patients": int(cohort.presence[m].sum()) if m in cohort.modalities else 0,
            "fraction": float(cohort.presence[m].mean()) if m in cohort.modalities else 0.0,
        }
        for m in plan.modalities
    }
    return {
        "run": {
            "path": str(layout.root.resolve()),
            "name": layout.root.resolve().name,
            "model": plan.manifest.model,
            "modalities": plan.modalities,
            "schema_version": plan.manifest.schema_version,
            "time_unit": plan.time_unit,
            "fingerprint": combine(prints + [file_fingerprint(m.path) for m in members]),
        },
        "model_used": plan.what,
        "members": [
            {
                "name": m.name,
                "checkpoint": str(m.path.relative_to(layout.root)),
                "fingerprint": file_fingerprint(m.path),
                "networks": 1 + len(m.payload.get("ensemble", {}).get("members", [])),
            }
            for m in members
        ],
        "workdir": str(cohort.workdir),
        "modalities_used": list(cohort.modalities),
        "n_patients": len(cohort.patients),
        "n_labelled": int(cohort.labels["time"].notna().sum()),
        "coverage": coverage,
        "features": plan.checks.features,
        "wsi": plan.checks.wsi,
        "warnings": plan.warnings,
        "shared_patients": plan.shared,
        "risk_cutoffs": _cutoffs(layout, plan.manifest),
        "bin_edges": [float(e) for e in edges],
        "options": plain(options),
    }


def run_predict(
    cfg: PredictConfig, console: Console, *, options: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    """Check, predict, write; return the exit code and ``predict.json``'s content."""
    import torch

    from healnet_cli.core.device import resolve_device
    from healnet_cli.data.inference import cpu_threads
    from healnet_cli.stages.predict.apply import predict_frame

    plan = plan_prediction(cfg)
    layout, cohort = plan.layout, plan.cohort
    out = prepare_predict_dir(
        cfg.out if cfg.out is not None else default_predict_dir(cfg.workdir, layout.root.resolve().name)
    )
    for w in plan.warnings:
        console.warn(w)
    patterns = ", ".join(f"{k}: {v}" for k, v in cohort.pattern_counts().items())
    console.info(
        f"predict: run {layout.root} ({plan.manifest.model}, {'+'.join(plan.modalities)}), {plan.what} -> "
        f"{len(cohort.patients)} patients of {cohort.workdir} ({patterns})"
    )
    device = resolve_device(cfg.device)
    threads = cpu_threads(cohort.modalities, device)
    if threads is not None:
        torch.set_num_threads(threads)
    frame, edges = predict_frame(
        [m.payload for m in plan.members],
        cohort,
        plan.modalities,
        device=str(device),
        batch_size=cfg.batch_size,
        grid=plan.manifest.bin_edges_all or _grid(layout, plan.members),
    )
    record = _record(plan, edges, dict(options or {}))
    meta = {
        "bin_edges": [float(e) for e in edges],
        "time_unit": plan.time_unit,
        "model": plan.manifest.model,
        "modalities": plan.modalities,
        "loss": str(plan.members[0].payload.get("loss", "nll")),
    }
    write_external(out, frame, meta, record)
    console.info(f"predictions: {out.predictions} ({len(frame)} patients); evaluate with `healnet evaluate {out.root}`")
    return EXIT_OK, {**record, "output": str(out.root)}


def _grid(layout: RunLayout, members: list[Member]) -> list[float]:
    """The fold ensemble's time bins for a schema-1 run: fitted on every patient's label, as train does."""
    from healnet_cli.data.survival import fit_bin_edges

    labels = read_labels(layout)
    n_bins = len(members[0].payload["bin_edges"]) - 1
    return fit_bin_edges(labels["time"].to_numpy(), labels["event"].to_numpy(bool), n_bins)
