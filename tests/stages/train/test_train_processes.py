"""`healnet train` as real processes: resume after SIGKILL, and torchrun with 2 CPU processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from train_factories import factories  # noqa: E402
from typer.testing import CliRunner

from healnet_cli.cli import build_app


def _args(ws: Path, out: Path, epochs: int) -> list[str]:
    return [
        "train",
        "--modalities",
        "rna,cnv",
        "--model",
        "snn",
        "--workdir",
        str(ws),
        "--out",
        str(out),
        "--folds",
        "2",
        "--epochs",
        str(epochs),
        "--patience",
        "1000",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--seed",
        "5",
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def test_resume_after_sigkill_gives_the_uninterrupted_result(tmp_path: Path) -> None:
    ws = factories.make_workspace(tmp_path / "ws", n_patients=30, omics={"rna": 8, "cnv": 4})
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "healnet_cli", *_args(ws, out, 20)],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    state, history_file = out / "fold_1" / "state.pt", out / "fold_1" / "history.jsonl"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if state.is_file() and history_file.is_file() and len(history_file.read_text().splitlines()) >= 3:
                break
            time.sleep(0.01)
        assert proc.poll() is None, f"training ended before it could be killed: {proc.stderr.read().decode()[-500:]}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert (out / "fold_0" / "predictions.parquet").is_file() and not (out / "predictions.parquet").exists()
    epochs_done = len((out / "fold_1" / "history.jsonl").read_text().splitlines())
    assert 0 < epochs_done < 20
    resumed = subprocess.run(
        [sys.executable, "-m", "healnet_cli", *_args(ws, out, 20), "--resume"],
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "fold 0: already finished" in resumed.stderr and "resuming after epoch" in resumed.stderr
    history = [json.loads(x) for x in (out / "fold_1" / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == list(range(20))
    reference = CliRunner().invoke(
        build_app(), _args(ws, tmp_path / "ref", 20)
    )  # one torch thread, as OMP_NUM_THREADS=1
    assert reference.exit_code == 0, reference.output
    a = pd.read_parquet(out / "predictions.parquet")
    b = pd.read_parquet(tmp_path / "ref" / "predictions.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_torchrun_two_cpu_processes_match_one_process(tmp_path: Path) -> None:
    ws = factories.make_workspace(tmp_path / "ws", n_patients=40, omics={"rna": 8, "cnv": 4})
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "healnet_cli",
        *_args(ws, tmp_path / "ddp", 15),
    ]
    ddp = subprocess.run(cmd, env=_env(), capture_output=True, text=True, check=False, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = CliRunner().invoke(build_app(), _args(ws, tmp_path / "one", 15))
    assert single.exit_code == 0, single.output
    a = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    b = json.loads((tmp_path / "one" / "summary.json").read_text())
    pred = pd.read_parquet(tmp_path / "ddp" / "predictions.parquet")
    assert len(pred) == 40 and np.isfinite(pred["risk"]).all()
    assert abs(a["cindex_mean"] - b["cindex_mean"]) < 0.1, (a["cindex_mean"], b["cindex_mean"])


FAIL_ON_RANK_1 = """
import os, sys
from healnet_cli.stages.train import fold as run

original = run.FoldTrainer.fit

def fit(self, fold, model_dir):
    if fold.index == 1 and os.environ.get("RANK") == "1":
        raise RuntimeError("injected failure")
    return original(self, fold, model_dir)

run.FoldTrainer.fit = fit
from healnet_cli.cli import main
sys.exit(main())
"""


def test_torchrun_fold_failing_on_one_rank_stops_every_process_and_resumes(tmp_path: Path) -> None:
    ws = factories.make_workspace(tmp_path / "ws", n_patients=40, omics={"rna": 8, "cnv": 4})
    script = tmp_path / "fail_rank1.py"
    script.write_text(FAIL_ON_RANK_1)
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(script),
        *_args(ws, out, 4),
    ]
    # Before the guard, rank 0 waited in a collective of fold 1 forever (TimeoutExpired here).
    ddp = subprocess.run(cmd, env=_env(), capture_output=True, text=True, check=False, timeout=180)
    assert ddp.returncode != 0
    assert "fold 1 failed on rank 1: RuntimeError: injected failure" in ddp.stderr
    assert "Traceback" not in ddp.stderr.split("fold 1 failed on rank 1")[0][-300:]
    assert (out / "fold_0" / "predictions.parquet").is_file() and not (out / "fold_1" / "predictions.parquet").exists()
    resumed = subprocess.run(
        [sys.executable, "-m", "healnet_cli", *_args(ws, out, 4), "--resume"],
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "fold 0: already finished" in resumed.stderr
    assert len(pd.read_parquet(out / "predictions.parquet")) == 40
