"""``healnet evaluate``: score run folders, draw figures, write metrics.json, summary.md, report.html.

Outputs of one run go to ``RUN/evaluation/`` (or ``--out``). Several runs: each gets its own
``evaluation/``; the comparison goes to ``--out`` or the first run's ``evaluation/comparison/``.
Exit code 0 when everything was computed, 3 when some metric group failed or some folds of
``splits.csv`` have no predictions (the report says which and why), 2 for a bad run folder (before
any work).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from healnet_cli import __version__
from healnet_cli.artifacts.run import (
    COMPARISON_DIR,
    COMPARISON_FILE,
    CONFIG_FILE,
    EVALUATION_DIR,
    METRICS_FILE,
    PREDICTIONS_FILE,
    REPORT_HTML,
    SPLITS_FILE,
    SUMMARY_MD,
)
from healnet_cli.core import atomic
from healnet_cli.core.config import plain, write_resolved_config
from healnet_cli.core.console import Console
from healnet_cli.core.errors import EXIT_OK, EXIT_PARTIAL, InputError, one_line
from healnet_cli.core.workspace import Workspace
from healnet_cli.stages.evaluate import plots
from healnet_cli.stages.evaluate.config import EvaluateConfig
from healnet_cli.stages.evaluate.document import (
    EVALUATION_SCHEMA,
    RunEvaluation,
    build_report,
    console_table,
    headline,
    metrics_json,
)
from healnet_cli.stages.evaluate.inference_port import FoldModels, Inference, default_inference
from healnet_cli.stages.evaluate.report import Figure, Report, to_html, to_markdown
from healnet_cli.stages.evaluate.run_folder import RunData, read_run, require_checkpoints


@dataclass
class Outcome:
    """What ``evaluate_runs`` did: exit code, per-run headline, where outputs went."""

    exit_code: int
    runs: list[dict[str, Any]] = field(default_factory=list)
    comparison: dict[str, Any] | None = None
    outputs: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"exit_code": self.exit_code, "runs": self.runs, "comparison": self.comparison, "outputs": self.outputs}


def _group(ev: RunEvaluation, name: str, func: Callable[[], Any], console: Console, debug: bool) -> Any:
    """Run one metric group (its wall time goes to ``ev.timings``); a failure is recorded (exit 3)
    and the report goes on."""
    start = time.perf_counter()
    try:
        return func()
    except Exception as exc:  # noqa: BLE001 - every group failure is reported, none is fatal
        if debug:
            traceback.print_exc()
        ev.failed[name] = one_line(exc)
        console.warn(f"{ev.run.name}: {name} not computed: {one_line(exc)}")
        return None
    finally:
        ev.timings[name] = ev.timings.get(name, 0.0) + time.perf_counter() - start


def _curves(ev: RunEvaluation, name: str) -> tuple[dict[str, Any], str]:
    """The curves ``name`` (``td_auc`` / ``brier``) to draw, and whose they are for the caption."""
    assert ev.scores is not None, "curves are drawn only when the metrics were computed"
    pooled = getattr(ev.scores.pooled, name)
    if ev.run.external is not None:
        return {"external cohort": pooled}, "on the external cohort"
    return {f"fold {k}": getattr(s, name) for k, s in ev.scores.folds.items()} | {
        "pooled": pooled
    }, "per fold and pooled"


def _figures(ev: RunEvaluation) -> None:
    unit = ev.run.time_unit
    if ev.scores is not None:
        curves, whose = _curves(ev, "td_auc")
        if any(curves.values()):
            ev.figures["td_auc"] = Figure(
                "td_auc.png",
                plots.curve_figure(
                    curves,
                    key="auc",
                    ylabel="AUC(t)",
                    title="Time-dependent AUC (cumulative/dynamic)",
                    time_unit=unit,
                    reference=0.5,
                ),
                f"Time-dependent AUC {whose}; dashed: chance",
            )
        curves, whose = _curves(ev, "brier")
        if any(curves.values()):
            ev.figures["brier"] = Figure(
                "brier.png",
                plots.curve_figure(
                    curves,
                    key="score",
                    ylabel="Brier score",
                    title="Brier score over time (IPCW)",
                    time_unit=unit,
                    reference=0.25,
                ),
                f"Brier score {whose}; dashed: 0.25 (a constant 0.5 prediction)",
            )
    if ev.groups is not None:
        ev.figures["km"] = Figure(
            "km_risk_groups.png",
            plots.km_figure(ev.groups, time_unit=unit),
            "Kaplan–Meier curves of the predicted risk groups with numbers at risk",
        )
    if ev.calibration is not None and ev.calibration.rows:
        ev.figures["calibration"] = Figure(
            "calibration.png",
            plots.calibration_figure(ev.calibration, time_unit=unit),
            "Predicted vs observed (KM) survival per quartile of predicted survival",
        )


def _all_figures(ev: RunEvaluation) -> None:
    _figures(ev)
    _model_figures(ev)


def _model_figures(ev: RunEvaluation) -> None:
    if ev.ablation is not None:
        ev.figures["ablation"] = Figure(
            "ablation.png", plots.ablation_figure(ev.ablation.rows()), "c-index with modalities removed at inference"
        )
    if ev.attention is None:
        return
    for m, top in ev.attention.top_features.items():
        ev.figures[f"top_{m}"] = Figure(
            f"top_{m}.png",
            plots.top_features_figure(
                [n for n, _ in top], [w for _, w in top], title=f"Top {m} features by mean attention"
            ),
            f"Top {len(top)} {m} features by attention weight averaged over test patients",
        )
    for i, h in enumerate(ev.attention.heatmaps):
        title = f"{h.label}: patient {h.patient_id} (risk {h.risk:.3g}), slide {h.slide_id}"
        png = plots.heatmap_figure(
            h.coords,
            h.weights,
            patch_px_level0=h.patch_px_level0,
            thumbnail=h.thumbnail,
            downsample=h.thumbnail_downsample,
            title=title.replace(", slide", "\nslide"),
        )
        caption = f"Per-patch attention, {title}" + (f" — {h.note}" if h.note else "")
        ev.figures[f"heatmap_{i}"] = Figure(f"heatmap_{i}_{h.label.replace(' ', '_')}.png", png, caption)


def _needs_models(config: EvaluateConfig, run: RunData) -> bool:
    """Whether the run's models are loaded (and torch imported): for the ablation, or for attention
    unless the run's options already say there is none to draw."""
    from healnet_cli.stages.evaluate.attention import known_nothing_to_draw

    if run.external is not None:
        return False
    return config.ablate or (config.attention and known_nothing_to_draw(run) is None)


EXTERNAL_SKIP = "not for external predictions (they are scored from predictions.parquet alone)"


def _evaluate_models(
    ev: RunEvaluation, config: EvaluateConfig, inference: Inference | None, console: Console, debug: bool
) -> None:
    if ev.run.external is not None or not (config.ablate or config.attention):
        ev.skipped["ablation"] = (
            EXTERNAL_SKIP if ev.run.external is not None and config.ablate else "not requested (--ablate)"
        )
        ev.skipped["attention"] = (
            EXTERNAL_SKIP if ev.run.external is not None and config.attention else "disabled (--no-attention)"
        )
        return
    if not _needs_models(config, ev.run):  # attention only, and the options say there is none
        from healnet_cli.stages.evaluate.attention import known_nothing_to_draw

        ev.skipped["ablation"] = "not requested (--ablate)"
        ev.skipped["attention"] = known_nothing_to_draw(ev.run) or ""
        return
    workdir = config.workdir if config.workdir is not None else ev.run.options.get("workdir")
    models = FoldModels(inference or default_inference(), ev.run.path, workdir=config.workdir, device=config.device)
    with _inference_threads(ev.run.modalities, config.device, enabled=inference is None):
        _model_groups(ev, config, models, workdir, console, debug)


def _model_groups(
    ev: RunEvaluation, config: EvaluateConfig, models: FoldModels, workdir: Any, console: Console, debug: bool
) -> None:
    if config.ablate:
        from healnet_cli.stages.evaluate.ablation import run_ablation

        console.info(f"{ev.run.name}: missing-modality ablation")
        ev.ablation = _group(
            ev,
            "ablation",
            lambda: run_ablation(ev.run, models, seed=config.seed, batch_size=config.batch_size),
            console,
            debug,
        )
    else:
        ev.skipped["ablation"] = "not requested (--ablate)"
    if not config.attention:
        ev.skipped["attention"] = "disabled (--no-attention)"
        return
    from healnet_cli.stages.evaluate.attention import nothing_to_draw, run_attention

    why = _group(ev, "attention", lambda: nothing_to_draw(ev.run, models, batch_size=config.batch_size), console, debug)
    if why:
        ev.skipped["attention"] = why
        return
    if "attention" in ev.failed:
        return
    console.info(f"{ev.run.name}: attention weights")
    tiles = Workspace.at(workdir).tiles_dir if workdir else None
    ev.attention = _group(
        ev,
        "attention",
        lambda: run_attention(ev.run, models, top_k=config.top_k_genes, tiles_dir=tiles, batch_size=config.batch_size),
        console,
        debug,
    )


@contextlib.contextmanager
def _inference_threads(modalities: Sequence[str], device: str, *, enabled: bool) -> Iterator[None]:
    """CPU inference with train's thread rule (one thread for omics-only models: with several, the
    thread synchronisation of tiny tensors costs more than the work); restored afterwards."""
    if not enabled:
        yield
        return
    import torch

    from healnet_cli.data.inference import cpu_threads

    threads, before = cpu_threads(modalities, torch.device(device)), torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def evaluate_run(
    run: RunData, config: EvaluateConfig, *, console: Console, inference: Inference | None = None, debug: bool = False
) -> RunEvaluation:
    """Compute every metric group of one run (failures recorded in ``failed``)."""
    from healnet_cli.stages.evaluate.curves import calibrate, km_risk_groups
    from healnet_cli.stages.evaluate.scoring import score_run

    ev = RunEvaluation(run)
    for path, why in run.unfinished.items():
        ev.skipped[path] = f"{why}; that fold is not evaluated"
        console.warn(f"{run.name}: no {path} ({why}); evaluating the other folds")
    start = time.perf_counter()
    ev.scores = _group(
        ev,
        "metrics",
        lambda: score_run(run, times=list(config.times), n_boot=config.bootstrap, seed=config.seed),
        console,
        debug,
    )
    ev.groups = _group(ev, "risk_groups", lambda: km_risk_groups(run, config.groups), console, debug)
    ev.calibration = _group(ev, "calibration", lambda: calibrate(run, list(config.times)), console, debug)
    from healnet_cli.stages.evaluate.clinical import evaluate_clinical

    evaluate_clinical(
        ev,
        config.workdir if config.workdir is not None else run.options.get("workdir"),
        n_boot=config.bootstrap,
        seed=config.seed,
        group=lambda name, func: _group(ev, name, func, console, debug),
    )
    console.info(f"{run.name}: metrics in {time.perf_counter() - start:.1f}s")
    _evaluate_models(ev, config, inference, console, debug)
    _group(ev, "figures", lambda: _all_figures(ev), console, debug)
    return ev


def _write_report(folder: Path, report: Report, figures: Sequence[Figure], footer: str) -> list[Path]:
    written = [atomic.write_bytes(folder / f.name, f.png) for f in figures]
    written.append(atomic.write_text(folder / SUMMARY_MD, to_markdown(report)))
    written.append(atomic.write_text(folder / REPORT_HTML, to_html(report, footer=footer)))
    return written


def _footer() -> str:
    return f"healnet {__version__} · generated {time.strftime('%Y-%m-%d %H:%M:%S %Z')}"


FIGURE_PATTERNS = (
    "km_risk_groups.png",
    "calibration.png",
    "td_auc.png",
    "brier.png",
    "ablation.png",
    "top_*.png",
    "heatmap_*.png",
)


def _remove_stale_figures(folder: Path, keep: set[str]) -> None:
    """Delete figures of an earlier evaluation that this one did not draw (only evaluate's names)."""
    for pattern in FIGURE_PATTERNS:
        for path in folder.glob(pattern):
            if path.name not in keep:
                path.unlink(missing_ok=True)


def write_run_outputs(ev: RunEvaluation, folder: Path, options: dict[str, Any]) -> list[Path]:
    """``metrics.json``, figures, ``summary.md``, ``report.html`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_figures(folder, {f.name for f in ev.figures.values()})
    written = [atomic.write_json(folder / METRICS_FILE, metrics_json(ev, options))]
    return written + _write_report(folder, build_report(ev), list(ev.figures.values()), _footer())


def written_by_evaluate(folder: Path) -> bool:
    """Whether ``folder`` holds an earlier evaluation (its ``metrics.json`` / ``comparison.json``, or
    a ``config.yaml`` of ``healnet evaluate``): only such a folder is rewritten."""
    import json

    import yaml

    for name, key, expected in ((METRICS_FILE, "schema", EVALUATION_SCHEMA), (CONFIG_FILE, "command", "evaluate")):
        path = folder / name
        try:
            text = path.read_text()
            data = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and data.get(key) == expected:
            return True
    return (folder / COMPARISON_FILE).is_file()


def check_out_folder(out: Path) -> None:
    """``--out`` must be new, empty or an earlier evaluation: evaluate replaces its own figures,
    ``summary.md`` and ``config.yaml`` there, which must never be a user's files.

    Raises
    ------
    InputError
        ``out`` is a training run folder, a file, or a non-empty folder evaluate did not write.
    """
    if any((out / name).exists() for name in (SPLITS_FILE, PREDICTIONS_FILE)):
        raise InputError(
            f"--out {out}: is a training run folder (its config.yaml would be overwritten); "
            "pass a new folder, or leave --out out to write RUN/evaluation/"
        )
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file, not a folder; pass a new or empty folder")
    if not out.is_dir() or written_by_evaluate(out):
        return
    atomic.sweep_temporaries(out)  # a killed evaluate's half-written files are not the user's
    entries = sorted(p.name for p in out.iterdir() if not p.name.startswith(atomic.TMP_PREFIX))
    if entries:
        shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
        raise InputError(
            f"--out {out}: not empty ({shown}) and not written by `healnet evaluate`; evaluate would overwrite "
            "config.yaml/summary.md and replace figures there: pass a new or empty folder"
        )


def evaluate_runs(
    run_dirs: Sequence[Path],
    config: EvaluateConfig,
    *,
    console: Console,
    options: dict[str, Any] | None = None,
    sources: dict[str, str] | None = None,
    inference: Inference | None = None,
    debug: bool = False,
) -> Outcome:
    """Evaluate each run folder (and compare them when there are several).

    Raises
    ------
    InputError
        A run folder lacks predictions, labels or splits, or (with --ablate / attention) a
        checkpoint — before any work.
    """
    if config.out is not None:
        check_out_folder(Path(config.out))
    start = time.perf_counter()
    runs = [read_run(d) for d in run_dirs]
    read_s = (time.perf_counter() - start) / max(len(runs), 1)
    for run in runs:
        if _needs_models(config, run):
            require_checkpoints(run)
    if any(_needs_models(config, run) for run in runs):
        from healnet_cli.core.device import resolve_device

        config = dataclasses.replace(config, device=str(resolve_device(config.device)))
    options = plain(dict(options) if options is not None else dataclasses.asdict(config))
    outcome = Outcome(EXIT_OK)
    evals = []
    for run in runs:
        ev = evaluate_run(run, config, console=console, inference=inference, debug=debug)
        ev.timings = {"read": read_s, **ev.timings}
        folder = config.out if (config.out is not None and len(runs) == 1) else run.path / EVALUATION_DIR
        start = time.perf_counter()
        outcome.outputs += [str(p) for p in write_run_outputs(ev, folder, options)]
        write_resolved_config(folder, options, command="evaluate", sources=sources)
        ev.timings["write"] = time.perf_counter() - start
        outcome.runs.append(
            {**headline(ev), "output": str(folder), "timings_s": {k: round(v, 3) for k, v in ev.timings.items()}}
        )
        if ev.failed or run.unfinished:
            outcome.exit_code = EXIT_PARTIAL
        evals.append(ev)
        console.info(console_table(ev))
        console.info(f"{run.name}: report {folder / REPORT_HTML}")
    if len(evals) > 1:
        outcome.comparison = _write_comparison(evals, config, options, sources, console)
    return outcome


def _write_comparison(
    evals: list[RunEvaluation],
    config: EvaluateConfig,
    options: dict[str, Any],
    sources: dict[str, str] | None,
    console: Console,
) -> dict[str, Any]:
    from healnet_cli.stages.evaluate.compare import compare_runs, comparison_report

    folder = config.out if config.out is not None else evals[0].run.path / EVALUATION_DIR / COMPARISON_DIR
    result = compare_runs(evals, n_boot=config.bootstrap, seed=config.seed)
    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_json(
        folder / COMPARISON_FILE,
        {**result, "options": options, "inputs": {ev.run.name: ev.run.fingerprints for ev in evals}},
    )
    _write_report(folder, comparison_report(result), [], _footer())
    write_resolved_config(folder, options, command="evaluate", sources=sources)
    console.info(f"comparison: {folder / REPORT_HTML}")
    return {"output": str(folder), "paired_tests": result["paired_tests"]}
