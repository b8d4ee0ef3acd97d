"""Helpers of the predict tests: two disjoint synthetic cohorts (tests/data/factories.py) and a run
trained on the first."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from typer.testing import CliRunner

from healnet_cli.cli import build_app

_NAME = "healnet_train_factories"
if _NAME in sys.modules:
    factories = sys.modules[_NAME]
else:
    _spec = importlib.util.spec_from_file_location(_NAME, Path(__file__).resolve().parents[2] / "data" / "factories.py")
    factories = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = factories
    _spec.loader.exec_module(factories)

#: What every feature file of the cohorts records (the run is checked against it).
PROVENANCE = {
    "weights": {"source": "file", "file": "toy.safetensors", "sha256": "ab" * 32},
    "patch_mpp": 0.5,
    "patch_px": 256,
}
SMALL = ["--hparam", "depth=1", "--hparam", "num_latents=4", "--hparam", "latent_dim=8", "--hparam", "cross_dim_head=8"]
MISSING = {"cnv": 0.2, "wsi": 0.25}


def invoke(*args: str):
    return CliRunner().invoke(build_app(), [str(a) for a in args])


def training_cohort(root: Path) -> Path:
    return factories.make_workspace(root, wsi=True, missing=MISSING, provenance=PROVENANCE)


def external_cohort(root: Path, *, provenance: dict | None = None, **kw) -> Path:
    """20 patients Q000..Q019 (disjoint from the training cohort's P000..), another seed."""
    return factories.make_workspace(
        root,
        wsi=True,
        n_patients=20,
        seed=5,
        id_prefix="Q",
        missing=MISSING,
        provenance={**PROVENANCE, **(provenance or {})},
        **kw,
    )


def train_run(ws: Path, out: Path, *extra: str) -> Path:
    result = invoke(
        "train",
        "--modalities",
        "wsi,rna,cnv",
        "--workdir",
        ws,
        "--out",
        out,
        "--folds",
        "3",
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--seed",
        "2",
        "--ensemble",
        "2",
        "--max-patches",
        "4",
        *SMALL,
        *extra,
    )
    assert result.exit_code == 0, result.output
    return out


@contextlib.contextmanager
def one_thread_training() -> Iterator[None]:
    """Toy models: `healnet train` would use every CPU for a run with WSI bags; one is faster here."""
    import torch

    before, threads = os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = before
        torch.set_num_threads(threads)
