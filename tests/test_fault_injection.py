"""Fault injection: what a resubmitted SLURM job must be able to trust.

Each stage is killed mid-run (SIGKILL at a chosen point, see ``pipeline_factories.DRIVER``) on a
fake host, then rerun on another fake host (``HEALNET_HOSTNAME``): before the killed job's lease
expires its items are "held" (skipped, exit 0); after, they are taken over. The outputs must be
byte-identical to an uninterrupted run, and no lock or temporary may be left. Also: SIGTERM,
two processes on one workdir, stepped and listed SLURM arrays.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_factories import EXTRACT_ARGS, TILE_ARGS, leftovers, make_slides, run_healnet, snapshot, wide_table
from typer.testing import CliRunner

from healnet_cli.cli import build_app
from healnet_cli.core.store import MANIFEST_SUFFIX

runner = CliRunner()
EXPIRY = "1.0"  # the killed job's lease: HEALNET_LOCK_EXPIRY_S (its heartbeat every 1/3 s)
NODE_A = {"HEALNET_HOSTNAME": "node-a", "HEALNET_LOCK_EXPIRY_S": EXPIRY}
NODE_B = {"HEALNET_HOSTNAME": "node-b", "HEALNET_LOCK_EXPIRY_S": "600"}  # before the lease expired
NODE_B_LATER = {"HEALNET_HOSTNAME": "node-b", "HEALNET_LOCK_EXPIRY_S": EXPIRY}


def _status(folder: Path, name: str = "status.csv") -> dict[str, tuple[str, str]]:
    with open(folder / name, newline="") as handle:
        return {row["item"]: (row["status"], row["reason"]) for row in csv.DictReader(handle)}


def _wait_for_expiry(folder: Path) -> None:
    """Until every lock under ``folder`` is older than the lease expiry (no fixed sleep)."""
    deadline = time.monotonic() + 10
    while any(time.time() - p.stat().st_mtime <= float(EXPIRY) for p in folder.rglob("*.lock")):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _tile_args(slides: Path, work: Path) -> list[str]:
    return ["tile", str(slides), "-w", str(work), *TILE_ARGS, "--json"]


def _extract_args(work: Path) -> list[str]:
    return ["extract", "-w", str(work), *EXTRACT_ARGS, "--json"]


@pytest.fixture(scope="module")
def tiled_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Slides and an uninterrupted tile run of them."""
    root = tmp_path_factory.mktemp("reference")
    slides = make_slides(root / "slides")
    work = root / "work"
    result = runner.invoke(build_app(), _tile_args(slides, work))
    assert result.exit_code == 0, result.output
    return slides, work


@pytest.fixture
def reference(request: pytest.FixtureRequest, tiled_reference: tuple[Path, Path]) -> tuple[Path, Path]:
    """``tiled_reference``, plus an uninterrupted extract run for the extract case."""
    slides, work = tiled_reference
    if request.node.callspec.params.get("stage") == "extract" and not (work / "features").is_dir():
        result = runner.invoke(build_app(), _extract_args(work))
        assert result.exit_code == 0, result.output
    return slides, work


STAGES = {
    # stage: (folder under the workdir, seam, calls before the kill, suffixes compared byte for byte)
    "tile": ("tiles", "commit", 3, (".parquet", ".png")),
    "extract": ("features/timm-test_resnet", "commit", 3, (".safetensors",)),
    "omics": ("omics", "replace", 3, (".parquet",)),
}


def _stage_args(stage: str, work: Path, slides: Path, table: Path) -> list[str]:
    return {
        "tile": _tile_args(slides, work),
        "extract": _extract_args(work),
        "omics": ["omics", str(table), "-w", str(work), "--json"],
    }[stage]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_killed_job_resumes_on_another_host(stage: str, tmp_path: Path, reference: tuple[Path, Path]) -> None:
    slides, reference = reference
    folder, seam, kill_at, suffixes = STAGES[stage]
    table = wide_table(tmp_path / "study_all_clean.csv")
    work = tmp_path / "work"
    if stage == "extract":  # extract needs the tiles: the reference's, copied with their times
        shutil.copytree(reference / "tiles", work / "tiles")
    clean = tmp_path / "clean"
    if stage == "omics":
        assert runner.invoke(build_app(), _stage_args("omics", clean, slides, table)).exit_code == 0
        expected = snapshot(clean / folder, suffixes=suffixes)
    else:
        expected = snapshot(reference / folder, suffixes=suffixes)

    killed = run_healnet(_stage_args(stage, work, slides, table), env=NODE_A, kill=(seam, kill_at, "SIGKILL"))
    assert killed.returncode == -9, killed.stderr
    out = work / folder
    committed = {p.name[: -len(MANIFEST_SUFFIX)] for p in out.glob(f"*{MANIFEST_SUFFIX}")}
    assert 1 <= len(committed) < len(expected) and list(out.glob("*.lock")), "not killed mid-run"

    # resubmitted at once on another node: node-a's lease has not expired, its items are held
    early = runner.invoke(build_app(), _stage_args(stage, work, slides, table), env=NODE_B)
    assert early.exit_code == 0, early.output
    summary = json.loads(early.stdout)
    assert summary["held"] and not summary["failed"] and all("node-a:" in h["reason"] for h in summary["held"])

    # later (lease expired): the items are taken over and finished, byte-identical to a clean run
    _wait_for_expiry(out)
    late = runner.invoke(build_app(), _stage_args(stage, work, slides, table), env=NODE_B_LATER)
    assert late.exit_code == 0, late.output
    summary = json.loads(late.stdout)
    assert not summary["held"] and not summary["failed"] and summary["counts"]["done"] >= 1
    assert snapshot(out, suffixes=suffixes) == expected
    assert {s for s, _ in _status(out).values()} <= {"done", "skipped"}
    assert leftovers(work) == []


def test_sigterm_releases_locks_exits_143_and_resumes(tmp_path: Path, tiled_reference: tuple[Path, Path]) -> None:
    slides, reference = tiled_reference
    work = tmp_path / "work"
    term = run_healnet(_tile_args(slides, work), kill=("commit", 3, "SIGTERM"))
    assert term.returncode == 143, term.stderr
    assert "SIGTERM" in term.stderr and "rerun (resubmit) the same command to resume" in term.stderr
    assert "interrupted while writing slide_2" in term.stderr
    assert leftovers(work) == []  # the lock was released: a rerun anywhere takes over at once
    rerun = runner.invoke(build_app(), _tile_args(slides, work))
    assert rerun.exit_code == 0, rerun.output
    assert json.loads(rerun.stdout)["counts"] == {"done": 4, "skipped": 2, "failed": 0}
    assert snapshot(work / "tiles", suffixes=(".parquet", ".png")) == snapshot(
        reference / "tiles", suffixes=(".parquet", ".png")
    )


def test_two_processes_on_one_workdir_share_the_work(tmp_path: Path, tiled_reference: tuple[Path, Path]) -> None:
    slides, reference = tiled_reference
    work = tmp_path / "work"
    args = [sys.executable, "-m", "healnet_cli", *_tile_args(slides, work)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(args, env={**env, "HEALNET_HOSTNAME": f"node-{k}"}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for k in range(2)]  # fmt: skip
    results = [(p.communicate(timeout=180), p.returncode) for p in procs]
    assert [code for _, code in results] == [0, 0], [err for (_, err), _ in results]
    summaries = [json.loads(out) for (out, _), _ in results]
    assert all(not s["failed"] for s in summaries)
    done = [s["counts"]["done"] for s in summaries]
    assert sum(done) == 6  # each slide tiled exactly once, by one of the two
    table = _status(work / "tiles")  # merged: every slide done (or found fresh), none failed or held
    assert sorted(table) == [f"slide_{i}" for i in range(6)]
    assert all(state == "done" or (state, reason) == ("skipped", "fresh") for state, reason in table.values()), table
    assert snapshot(work / "tiles", suffixes=(".parquet", ".png")) == snapshot(
        reference / "tiles", suffixes=(".parquet", ".png")
    )
    assert leftovers(work) == []


@pytest.mark.parametrize(
    "ids,step",
    [([0, 2, 4, 6], 2), ([1, 3, 5], 1), ([10, 11, 12, 13, 14, 15, 16, 17], 1)],
    ids=["--array=0-6:2", "--array=1,3,5", "--array=10-17"],
)
def test_stepped_and_listed_arrays_tile_every_slide_once(
    ids: list[int], step: int, tmp_path: Path, tiled_reference: tuple[Path, Path]
) -> None:
    slides, reference = tiled_reference
    work = tmp_path / "work"
    done = []
    for task in ids:
        env = {
            "SLURM_ARRAY_TASK_ID": str(task),
            "SLURM_ARRAY_TASK_MIN": str(ids[0]),
            "SLURM_ARRAY_TASK_MAX": str(ids[-1]),
            "SLURM_ARRAY_TASK_COUNT": str(len(ids)),
            "SLURM_ARRAY_TASK_STEP": str(step),
        }
        result = runner.invoke(build_app(), _tile_args(slides, work), env=env)
        assert result.exit_code == 0, result.output
        done += [r["item"] for r in _status_rows(work / "tiles", len(ids), ids.index(task)) if r["status"] == "done"]
    assert sorted(done) == [f"slide_{i}" for i in range(6)]
    names = {p.name for p in (work / "tiles").glob("config*.yaml")}
    assert names == {f"config-shard-{i}-of-{len(ids)}.yaml" for i in range(len(ids))}  # one record per shard
    assert snapshot(work / "tiles", suffixes=(".parquet", ".png")) == snapshot(
        reference / "tiles", suffixes=(".parquet", ".png")
    )


def _status_rows(folder: Path, count: int, index: int) -> list[dict[str, str]]:
    with open(folder / f"status-shard-{index}-of-{count}.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_unevenly_spaced_array_is_refused_with_how_to_submit(
    tmp_path: Path, tiled_reference: tuple[Path, Path]
) -> None:
    slides, _ = tiled_reference
    env = {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "5",
           "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_STEP": "1"}  # --array=1,2,5, task 2  # fmt: skip
    result = runner.invoke(build_app(), _tile_args(slides, tmp_path / "w"), env=env)
    assert result.exit_code == 2
    assert "not evenly spaced" in result.output and "--array=0-2" in result.output
    assert not (tmp_path / "w" / "tiles").exists() or not list((tmp_path / "w" / "tiles").glob("*.parquet"))


# -- train and predict: temporaries of a killed job are cleaned by the rerun ----------------------
def _train_args(work: Path, out: Path) -> list[str]:
    return ["train", "-w", str(work), "--modalities", "rna", "--model", "snn", "--folds", "2", "--epochs", "2",
            "--device", "cpu", "--ensemble", "2", "--batch-size", "4", "--out", str(out)]  # fmt: skip


@pytest.fixture(scope="module")
def omics_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("omics")
    work = root / "work"
    assert (
        runner.invoke(build_app(), ["omics", str(wide_table(root / "study_all_clean.csv")), "-w", str(work)]).exit_code
        == 0
    )
    return work


@pytest.fixture(scope="module")
def clean_run(omics_work: Path) -> Path:
    """An uninterrupted run (the reference; also what predict is run on)."""
    run = omics_work.parent / "clean_run"
    assert runner.invoke(build_app(), _train_args(omics_work, run)).exit_code == 0
    return run


@pytest.mark.parametrize("kill_at", [3, 16], ids=["creating-the-run", "fold-1-member"])
def test_killed_train_leaves_temporaries_that_the_resume_removes(
    kill_at: int, tmp_path: Path, omics_work: Path, clean_run: Path
) -> None:
    clean = clean_run
    out = tmp_path / "run"
    killed = run_healnet(_train_args(omics_work, out), env=NODE_A, kill=("replace", kill_at, "SIGKILL"))
    assert killed.returncode == -9, killed.stderr
    assert any(p.name.startswith(".tmp-") for p in out.rglob("*")), "killed mid-write: a temporary is left"
    _wait_for_expiry(out)
    rerun = runner.invoke(build_app(), [*_train_args(omics_work, out), "--resume"], env=NODE_B_LATER)
    assert rerun.exit_code == 0, rerun.output
    assert leftovers(out) == []
    suffixes = ("predictions.parquet", "summary.csv")
    assert snapshot(out, suffixes=suffixes) == snapshot(clean, suffixes=suffixes)


@pytest.mark.parametrize("kill_at", [1, 2], ids=["predictions", "predict.json"])
def test_killed_predict_is_rerun_into_the_same_folder(
    kill_at: int, tmp_path: Path, omics_work: Path, clean_run: Path
) -> None:
    run = clean_run
    out = tmp_path / "predicted"
    args = ["predict", str(run), "-w", str(omics_work), "--out", str(out), "--json"]
    killed = run_healnet(args, kill=("replace", kill_at, "SIGKILL"))
    assert killed.returncode == -9, killed.stderr
    rerun = runner.invoke(build_app(), args)
    assert rerun.exit_code == 0, rerun.output
    assert leftovers(out) == [] and (out / "predict.json").is_file()
