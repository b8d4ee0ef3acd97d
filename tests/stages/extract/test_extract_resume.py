"""A job killed with SIGKILL mid-run leaves only valid committed slides; the rerun finishes the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from extract_factories import add_slide
from typer.testing import CliRunner

from healnet_cli.artifacts.features import read_features
from healnet_cli.cli import build_app
from healnet_cli.core.store import MANIFEST_SUFFIX

N_SLIDES = 8


def _command(workdir: Path) -> list[str]:
    return [
        sys.executable, "-m", "healnet_cli", "extract", "-w", str(workdir), "-e", "timm:resnet18", "--random-init",
        "--device", "cpu", "--batch-size", "2", "--num-workers", "1", "--json",
    ]  # fmt: skip


def test_resume_after_sigkill(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    for i in range(N_SLIDES):
        add_slide(workdir, f"s{i}", seed=i, n_patches=8)
    folder = workdir / "features" / "timm-resnet18"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_command(workdir), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not list(folder.glob(f"*{MANIFEST_SUFFIX}")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    committed = sorted(folder.glob(f"*{MANIFEST_SUFFIX}"))
    assert 1 <= len(committed) < N_SLIDES, "the job was not killed mid-run"
    for manifest in committed:  # whatever was committed is complete
        read_features(folder / manifest.name.replace(MANIFEST_SUFFIX, ".safetensors"))

    rerun = subprocess.run(_command(workdir), env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    counts = json.loads(rerun.stdout)["counts"]
    assert counts["skipped"] == len(committed) and counts["done"] == N_SLIDES - len(committed)
    for i in range(N_SLIDES):
        assert read_features(folder / f"s{i}.safetensors").features.shape == (8, 512)
    assert not list(folder.glob(".tmp-*"))
    # a lock can only outlive a killed job for a slide it had committed (taken over when next written)
    assert {p.stem for p in folder.glob("*.lock")} <= {m.name[: -len(MANIFEST_SUFFIX)] for m in committed}
    last = CliRunner().invoke(build_app(), _command(workdir)[3:])
    assert last.exit_code == 0 and json.loads(last.stdout)["counts"]["skipped"] == N_SLIDES
