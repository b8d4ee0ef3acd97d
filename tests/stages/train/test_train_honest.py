"""What `healnet train` says when a c-index cannot be computed, when there is no inner validation,
and while it trains: events checked before any work, honest summaries (JSON null + reason, never
NaN; how many folds were scored), per-epoch progress on a terminal and in logs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from train_factories import factories  # noqa: E402
from typer.testing import CliRunner

from healnet_cli.artifacts.omics import modality_path, write_labels
from healnet_cli.cli import build_app
from healnet_cli.core.console import Console
from healnet_cli.stages.train.outputs import summarise, summary_line


def train(*args) -> object:
    return CliRunner().invoke(build_app(), ["train", *map(str, args)])


def _args(ws: Path, out: Path, *extra) -> list:
    return [
        "--modalities",
        "rna",
        "--model",
        "snn",
        "--workdir",
        ws,
        "--out",
        out,
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--ensemble",
        "1",
        "--batch-size",
        "8",
        *extra,
    ]


def _set_events(ws: Path, events: dict[str, bool]) -> None:
    path = modality_path(ws / "omics", "labels")
    labels = pd.read_parquet(path)
    for pid, value in events.items():
        labels.loc[pid, "event"] = value
    write_labels(path, labels, {"time_unit": "months"})


def _strict_json(path: Path) -> dict:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{path} holds {constant}, not valid JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_all_censored_cohort_is_an_input_error_before_training(tmp_path: Path) -> None:
    ws = factories.make_workspace(tmp_path / "ws", n_patients=12, omics={"rna": 4})
    _set_events(ws, {f"P{i:03d}": False for i in range(12)})
    result = train(*_args(ws, tmp_path / "run", "--folds", "2"))
    assert result.exit_code == 2, result.output
    assert "the cohort has 0 events among 12 patients (all censored)" in result.output
    assert not (tmp_path / "run" / "fold_0").exists() and "Traceback" not in result.output


def test_a_fold_fitted_on_too_few_patients_is_an_input_error(tmp_path: Path) -> None:
    ws = factories.make_workspace(tmp_path / "ws", n_patients=3, omics={"rna": 4})
    result = train(*_args(ws, tmp_path / "run", "--folds", "2"))
    assert result.exit_code == 2, result.output
    assert "fold 0 would be fitted on 1 patient(s)" in result.output and "use fewer --folds" in result.output
    assert not (tmp_path / "run" / "fold_0").exists()


def _three_folds(tmp_path: Path, n: int = 18) -> tuple[Path, Path]:
    """A workspace and a --splits folder of 3 folds; fold 1's test patients are all censored."""
    ws = factories.make_workspace(tmp_path / "ws", n_patients=n, omics={"rna": 4})
    ids = [f"P{i:03d}" for i in range(n)]
    tests = [ids[k * n // 3 : (k + 1) * n // 3] for k in range(3)]
    _set_events(ws, {**{p: False for p in tests[1]}, **{p: True for p in tests[0][:3] + tests[2][:3]}})
    splits = tmp_path / "splits"
    splits.mkdir()
    for k, test in enumerate(tests):
        rest = [p for p in ids if p not in test]
        pd.DataFrame({"train": rest, "val": test + [None] * (len(rest) - len(test))}).to_csv(splits / f"splits_{k}.csv")
    return ws, splits


def test_a_fold_without_test_events_is_warned_and_the_summary_counts_scored_folds(tmp_path: Path) -> None:
    ws, splits = _three_folds(tmp_path)
    out = tmp_path / "run"
    result = train(*_args(ws, out, "--splits", splits))
    assert result.exit_code == 0, result.output
    assert "warning: fold 1: no events among its 6 test patients" in result.output
    summary = _strict_json(out / "summary.json")
    assert summary["n_folds"] == 3 and summary["n_folds_scored"] == 2
    assert summary["not_scored"] == {"1": "no events among 6 patients (all censored)"}
    fold1 = summary["folds"][1]
    assert fold1["cindex"] is None and fold1["reason"] == "no events among 6 patients (all censored)"
    scored = [f["cindex"] for f in summary["folds"] if f["cindex"] is not None]
    assert summary["cindex_mean"] == pytest.approx(np.mean(scored)) and summary["cindex_sd"] == pytest.approx(
        np.std(scored)
    )
    assert "fold 1: c-index n/a (no events among 6 patients (all censored))" in result.output
    assert "over 2 folds; 2 of 3 folds scored (fold 1: no events among 6 patients (all censored))" in result.output
    assert "reason" in (out / "summary.csv").read_text().splitlines()[0]


def _frame(folds: dict[int, tuple[list[float], list[bool]]]) -> pd.DataFrame:
    rows = [
        {"fold": k, "time": t, "event": e, "risk": -t}
        for k, (ts, es) in folds.items()
        for t, e in zip(ts, es, strict=True)
    ]
    return pd.DataFrame(rows)


def test_summary_with_no_or_one_scored_fold_is_null_with_a_reason() -> None:
    none = summarise(_frame({0: ([1.0, 2.0], [False, False]), 1: ([3.0], [True])}), {}, {})
    assert none["cindex_mean"] is None and none["cindex_sd"] is None and none["n_folds_scored"] == 0
    assert none["not_scored"] == {"0": "no events among 2 patients (all censored)", "1": "too few patients (1 < 2)"}
    assert "not computable on any of 2 folds" in summary_line(none) and none["cindex_reason"]
    one = summarise(_frame({0: ([1.0, 2.0, 3.0], [True, True, False]), 1: ([1.0, 2.0], [False, False])}), {}, {})
    assert (
        one["cindex_mean"] == 1.0 and one["cindex_sd"] is None and one["cindex_sd_reason"] == "only one fold was scored"
    )
    assert summary_line(one).startswith("c-index 1.000 on 1 fold (no sd); 1 of 2 folds scored (fold 1: no events")


def test_no_inner_validation_says_so_instead_of_a_placeholder_loss(tmp_path: Path) -> None:
    ws = factories.make_workspace(tmp_path / "ws", n_patients=16, omics={"rna": 4})
    out = tmp_path / "run"
    result = train(*_args(ws, out, "--folds", "2", "--val-fraction", "0"))
    assert result.exit_code == 0, result.output
    assert "val loss -" not in result.output
    assert (
        "fold 0: no inner validation (--val-fraction 0): no early stopping, every network trains all 2 epochs "
        "and keeps its last epoch's weights"
    ) in result.output
    assert "fold 0: 2 epochs, the last epoch's weights kept (no inner validation)" in result.output
    history = [
        json.loads(line, parse_constant=lambda c: pytest.fail(c))
        for line in (out / "fold_0" / "history.jsonl").read_text().splitlines()
    ]
    assert [h["val_loss"] for h in history] == [None, None]


# -- progress ------------------------------------------------------------------------------------
def _loop_inputs():
    from healnet_cli.data.batching import PatientTable
    from healnet_cli.models import ModalitySpec, create_model
    from healnet_cli.stages.train.loop import LoopSettings, Targets

    rng = np.random.default_rng(0)

    def table(n: int) -> tuple[PatientTable, Targets]:
        t = PatientTable(
            [f"P{i}" for i in range(n)],
            ["rna"],
            {"rna": rng.normal(size=(n, 5)).astype(np.float32)},
            {"rna": np.ones(n, bool)},
        )
        return t, Targets(rng.exponential(10, n) + 0.1, rng.random(n) < 0.6, rng.integers(0, 4, n))

    torch.manual_seed(0)
    model = create_model("snn", {"rna": ModalitySpec("vector", 5)}, 4, dropout=0.0, hidden_dim=8)
    settings = LoopSettings(
        epochs=3,
        lr=1e-2,
        weight_decay=0.0,
        warmup_epochs=0,
        patience=50,
        l1=0.0,
        alpha=0.0,
        loss="nll",
        batch_size=4,
        grad_accum=1,
        modality_dropout=0.0,
        max_patches=None,
        seed=0,
        fold=2,
        device=torch.device("cpu"),
    )
    return model, *table(12), *table(6), settings


def test_epoch_progress_is_a_plain_line_in_logs() -> None:
    from healnet_cli.stages.train.loop import train_fold

    stream = io.StringIO()
    model, t, y, v, vy, s = _loop_inputs()
    _, history = train_fold(
        model, t, y, v, vy, s, console=Console(stream=stream, log_every_s=0.0), label="fold 2 member 1"
    )
    lines = [line for line in stream.getvalue().splitlines() if line.startswith("fold 2 member 1: ")]
    assert [line.split(" (")[0] for line in lines] == [f"fold 2 member 1: {k}/3 epochs" for k in (1, 2, 3)]
    last = history[-1]
    assert lines[-1].endswith(
        f"train loss {last['train_loss']:.4f}, val loss {last['val_loss']:.4f}, best epoch {last['best_epoch']}"
    )


@pytest.mark.parametrize("columns", [200, 60])
def test_epoch_progress_is_a_rich_line_on_a_terminal(columns: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from healnet_cli.stages.train.loop import train_fold

    monkeypatch.setenv("COLUMNS", str(columns))

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    model, t, y, v, vy, s = _loop_inputs()
    train_fold(model, t, y, v, vy, s, console=Console(stream=stream), label="fold 2")
    text = stream.getvalue()
    assert "fold 2" in text and "3/3" in text and "epochs" in text and "\x1b[" in text
    if columns >= 100:
        assert "train loss" in text and "val loss" in text and "best epoch" in text
    else:  # a narrow terminal: the status is cut ("…"), never the bar or the count
        assert "train loss" in text and "…" in text and "best epoch" not in text and "━" in text
