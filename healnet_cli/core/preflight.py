"""Pre-flight checks behind ``healnet doctor``: each gives PASS / WARN / FAIL and a one-line fix."""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

Level = Literal["PASS", "WARN", "FAIL"]
MIN_FREE_GB_FAIL = 1.0
MIN_FREE_GB_WARN = 20.0


@dataclass
class Check:
    name: str
    level: Level
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def check_python() -> Check:
    """The interpreter's version (older than 3.10 cannot install: pyproject's ``requires-python``)."""
    return Check("python", "PASS", ".".join(map(str, sys.version_info[:3])))


def check_torch() -> Check:
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - report any import failure
        return Check("torch", "FAIL", f"cannot import torch ({exc})", "run `make setup` (installs the pinned torch)")
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return Check("torch", "PASS", f"{torch.__version__}, CUDA {torch.version.cuda}: {names}")
    return Check(
        "torch",
        "WARN",
        f"{torch.__version__}, no CUDA device (CPU only)",
        "fine for tiling, omics and small models; use a GPU node for large-scale extraction",
    )


def check_module(name: str, fix: str) -> Callable[[], Check]:
    def run() -> Check:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001
            return Check(name, "FAIL", f"cannot import ({exc})", fix)
        return Check(name, "PASS", str(getattr(module, "__version__", "installed")))

    return run


def check_openslide() -> Check:
    try:
        import openslide
    except Exception as exc:  # noqa: BLE001
        return Check(
            "openslide",
            "FAIL",
            f"cannot load the OpenSlide library ({exc})",
            "pip install openslide-python openslide-bin (no system library needed)",
        )
    return Check("openslide", "PASS", f"library {openslide.__library_version__}, python {openslide.__version__}")


def check_workdir(workdir: Path) -> Check:
    target = workdir if workdir.exists() else _existing_parent(workdir)
    try:
        with tempfile.NamedTemporaryFile(dir=target, prefix=".healnet-doctor-"):
            pass
    except OSError as exc:
        return Check("workdir", "FAIL", f"{workdir}: not writable ({exc.strerror})", "pass a writable --workdir")
    state = "exists" if workdir.exists() else "will be created"
    return Check("workdir", "PASS", f"{workdir.resolve()} ({state}, writable)")


def check_disk(workdir: Path) -> Check:
    free_gb = shutil.disk_usage(_existing_parent(workdir)).free / 1e9
    detail = f"{free_gb:.1f} GB free under {_existing_parent(workdir)}"
    if free_gb < MIN_FREE_GB_FAIL:
        return Check("disk", "FAIL", detail, "free space or point --workdir at a larger disk")
    if free_gb < MIN_FREE_GB_WARN:
        return Check("disk", "WARN", detail, "features of a large cohort need tens of GB; consider a larger disk")
    return Check("disk", "PASS", detail)


def check_hub(timeout_s: float = 2.0) -> Check:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return Check("hub", "PASS", "offline mode (HF_HUB_OFFLINE=1): weights come from --weights files", "")
    try:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    except Exception:  # noqa: BLE001
        endpoint = os.environ.get("HF_ENDPOINT", "")
    host = urlparse(endpoint).hostname
    if not host:
        return Check("hub", "WARN", "no model hub endpoint configured", "use --weights FILE for pretrained extractors")
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            pass
    except OSError:
        return Check(
            "hub",
            "WARN",
            f"model hub {host} not reachable (offline node?)",
            "pass --weights FILE to `healnet extract`, or set HF_HUB_OFFLINE=1 to skip this probe",
        )
    return Check("hub", "PASS", f"model hub {host} reachable")


def _existing_parent(path: Path) -> Path:
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


def run_checks(workdir: Path) -> list[Check]:
    """Every check, in a fixed order."""
    checks: list[Callable[[], Check]] = [
        check_python,
        check_torch,
        check_module("timm", "pip install timm (see requirements/constraints.txt)"),
        check_openslide,
        check_module("sksurv", "pip install scikit-survival"),
        check_module("pyarrow", "pip install pyarrow"),
        lambda: check_workdir(workdir),
        lambda: check_disk(workdir),
        check_hub,
    ]
    return [check() for check in checks]
