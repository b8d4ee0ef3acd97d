"""The validated options of ``healnet tile``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from healnet_cli.core.errors import InputError
from healnet_cli.core.runner import check_on_error
from healnet_cli.stages.tile.export import EXPORTS


@dataclass(frozen=True)
class TileConfig:
    """Options of one ``healnet tile`` run (see ``docs/tile.md``)."""

    slides: tuple[Path, ...] = ()
    workdir: Path = Path("healnet_work")
    slides_csv: Path | None = None
    mpp: float = 0.5
    patch_size: int = 256
    overlap: int = 0
    min_tissue: float = 0.5
    min_area: float = 10_000.0
    mpp_csv: Path | None = None
    default_mpp: float | None = None
    seg_mpp: float = 16.0
    export: tuple[str, ...] = field(default_factory=tuple)
    force: bool = False
    shard: str | None = None
    on_error: str = "continue"

    def __post_init__(self) -> None:
        _positive("--mpp", self.mpp)
        _positive("--seg-mpp", self.seg_mpp)
        if self.default_mpp is not None:
            _positive("--default-mpp", self.default_mpp)
        if self.patch_size < 8:
            raise InputError(f"--patch-size {self.patch_size} is too small; use at least 8 px (typical: 224 or 256)")
        if not 0 <= self.overlap < self.patch_size:
            raise InputError(f"--overlap {self.overlap} must be >= 0 and smaller than --patch-size {self.patch_size}")
        if not 0.0 <= self.min_tissue <= 1.0:
            raise InputError(f"--min-tissue {self.min_tissue} must be a fraction in [0, 1] (e.g. 0.5)")
        if not math.isfinite(self.min_area) or self.min_area < 0:
            raise InputError(f"--min-area {self.min_area} must be >= 0 (µm²)")
        unknown = sorted(set(self.export) - set(EXPORTS))
        if unknown:
            raise InputError(f"--export {','.join(unknown)}: unknown format(s); choose from {', '.join(EXPORTS)}")
        check_on_error(self.on_error)

    @property
    def tiles_dir(self) -> Path:
        return Path(self.workdir) / "tiles"

    def output_params(self) -> dict[str, Any]:
        """The options that change every slide's outputs (they key the cache). ``--default-mpp``
        keys only the slides that use it (see :func:`healnet_cli.stages.tile.run.item_fingerprint`)."""
        return {
            "mpp": self.mpp,
            "patch_size": self.patch_size,
            "overlap": self.overlap,
            "min_tissue": self.min_tissue,
            "min_area": self.min_area,
            "seg_mpp": self.seg_mpp,
            "export": sorted(self.export),
        }


def parse_exports(values: list[str] | tuple[str, ...] | str | None) -> tuple[str, ...]:
    """``--export clam,geojson`` or repeated ``--export``: a sorted tuple of lower-case names."""
    if values is None:
        return ()
    if isinstance(values, str):
        values = [values]
    names = {part.strip().lower() for value in values for part in str(value).split(",") if part.strip()}
    return tuple(sorted(names))


def _positive(option: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise InputError(f"{option} {value!r} must be a positive number of µm per pixel")
