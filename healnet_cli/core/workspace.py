"""The workspace layout: where each stage reads and writes, so stages chain without paths.

::

    <workdir>/            (--workdir, env HEALNET_WORKDIR, default ./healnet_work)
      tiles/              per-slide patch coordinates, QC images, manifests, status
      features/<name>/    per-slide feature matrices of one extractor
      omics/              <modality>.parquet and labels.parquet
      runs/<name>/        training runs (``healnet train``; ``--out`` puts one elsewhere)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from healnet_cli.core.errors import InputError

DEFAULT_WORKDIR = "healnet_work"
DEFAULT_RUNS = "runs"


def slug(name: str) -> str:
    """A folder-safe version of a registry name (``timm:resnet50`` → ``timm-resnet50``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "unnamed"


def check_features_name(name: str | None) -> None:
    """``--name`` (the folder ``features/NAME/``) checked: already folder-safe, as :func:`slug` leaves it.

    Raises
    ------
    InputError
        ``name`` is empty or has characters other than letters, digits, ``.``, ``_`` and ``-``.
    """
    if name is not None and (not name or slug(name) != name):
        raise InputError(f"--name {name!r}: use letters, digits, '.', '_' or '-' (it names the folder features/NAME/)")


@dataclass(frozen=True)
class Workspace:
    """Paths inside one workdir."""

    root: Path

    @classmethod
    def at(cls, workdir: str | os.PathLike[str] | None) -> Workspace:
        return cls(Path(workdir if workdir is not None else DEFAULT_WORKDIR))

    @property
    def tiles_dir(self) -> Path:
        return self.root / "tiles"

    @property
    def features_root(self) -> Path:
        return self.root / "features"

    def features_dir(self, extractor: str) -> Path:
        return self.features_root / slug(extractor)

    @property
    def omics_dir(self) -> Path:
        return self.root / "omics"

    @property
    def runs_dir(self) -> Path:
        return self.root / DEFAULT_RUNS

    def find_run(self, run: str | os.PathLike[str]) -> Path:
        """``run`` as given when it exists (or is absolute), else ``<workdir>/runs/<run>`` when that
        is a folder (a run named by ``healnet train --name``), else ``run`` (the caller reports it)."""
        path = Path(run)
        if path.exists() or path.is_absolute():
            return path
        named = self.runs_dir / path
        return named if named.is_dir() else path

    def extractors(self) -> list[str]:
        """Feature folders present in the workspace."""
        if not self.features_root.is_dir():
            return []
        return sorted(p.name for p in self.features_root.iterdir() if p.is_dir())
