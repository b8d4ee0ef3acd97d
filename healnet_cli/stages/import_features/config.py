"""``healnet import-features`` options as one validated, frozen config."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from healnet_cli.core.errors import InputError
from healnet_cli.core.runner import check_on_error
from healnet_cli.core.workspace import check_features_name
from healnet_cli.stages.import_features.formats import FORMATS

DTYPES = ("float16", "float32")


@dataclass(frozen=True)
class ImportConfig:
    """Everything that decides what ``healnet import-features`` does.

    Attributes
    ----------
    source
        The other tool's features folder (``DIR``).
    format
        ``trident``, ``clam``, ``stamp`` or ``slideflow``.
    encoder
        Encoder name (required where the files do not record it: CLAM); a healnet preset name, or the
        tool's own name (``uni_v1``), which is mapped to the preset computing the same output.
    name
        Features folder ``features/<name>/`` (default: the encoder name).
    mpp, patch_size
        Patch µm/px and size in pixels where the source does not record them.
    slide_mpp
        Level-0 µm/px of slides without an ``mpp`` in ``--slides-csv`` (STAMP µm and slideflow
        centre coordinates need it).
    slides_csv, coords_dir
        Slide → patient (and mpp) table; the folder of separate coordinate files (CLAM ``patches/``,
        TRIDENT ``patches/`` for ``.pt`` features, slideflow index files).
    """

    workdir: Path
    source: Path
    format: str
    encoder: str | None = None
    name: str | None = None
    mpp: float | None = None
    patch_size: int | None = None
    slide_mpp: float | None = None
    slides_csv: Path | None = None
    coords_dir: Path | None = None
    dtype: str = "float16"
    force: bool = False
    shard: str | None = None
    on_error: str = "continue"

    def validate(self) -> ImportConfig:
        """Raise InputError on an invalid value (before any work); return self."""
        if not self.source.is_dir():
            raise InputError(f"{self.source}: no such folder; pass the folder holding the {self.format} feature files")
        if self.format not in FORMATS:
            raise InputError(f"--format {self.format!r} is not one of {', '.join(FORMATS)}")
        if self.coords_dir is not None and not self.coords_dir.is_dir():
            raise InputError(f"--coords-dir {self.coords_dir}: no such folder")
        if self.dtype not in DTYPES:
            raise InputError(f"--dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        for flag, value in (("--mpp", self.mpp), ("--slide-mpp", self.slide_mpp)):
            if value is not None and not (math.isfinite(value) and 0 < value < 100):
                raise InputError(f"{flag} {value}: expected µm per pixel, a positive number such as 0.25 or 0.5")
        if self.patch_size is not None and self.patch_size < 1:
            raise InputError(f"--patch-size {self.patch_size}: must be a positive number of pixels")
        check_features_name(self.name)
        check_on_error(self.on_error)
        return self
