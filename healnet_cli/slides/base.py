"""The slide reader interface shared by ``healnet tile`` and ``healnet extract``.

A reader exposes a pyramid (level dimensions and downsamples), the slide's properties and two ways
to get pixels: :meth:`SlideReader.read_region` (level-0 location, any level) and
:meth:`SlideReader.thumbnail` (bounded memory, independent of the slide size). Pixels are always RGB
``uint8`` arrays ``[h, w, 3]``; transparent or out-of-slide areas are white.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

#: Whole-slide formats, read with OpenSlide (``.tif``/``.tiff`` included).
WSI_EXTENSIONS: tuple[str, ...] = (
    ".svs",
    ".tif",
    ".tiff",
    ".ndpi",
    ".mrxs",
    ".scn",
    ".vms",
    ".vmu",
    ".bif",
    ".svslide",
)
#: Plain images, read whole with PIL (their mpp must come from a CSV or ``--default-mpp``).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg")
#: Every extension ``healnet tile`` picks up when it walks a folder.
SLIDE_EXTENSIONS: tuple[str, ...] = WSI_EXTENSIONS + IMAGE_EXTENSIONS

#: Background value of transparent or out-of-slide pixels.
BACKGROUND = 255


@runtime_checkable
class SlideReader(Protocol):
    """A whole-slide image opened for reading (one per process; open again in each worker)."""

    path: Path
    backend: str  # "openslide" | "image" | "tifffile"
    dimensions: tuple[int, int]
    level_count: int
    level_dimensions: list[tuple[int, int]]
    level_downsamples: list[float]
    properties: Mapping[str, str]

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """RGB ``uint8`` ``[h, w, 3]`` of ``size`` = (w, h) pixels at ``level`` whose top-left corner is
        ``location`` = (x, y) in level-0 pixels; transparent or outside areas are white."""
        ...

    def thumbnail(self, max_px: int) -> np.ndarray:
        """RGB ``uint8`` image of the whole slide whose longest side is at most ``max_px``."""
        ...

    def close(self) -> None:
        """Release the file handle."""
        ...

    def __enter__(self) -> SlideReader: ...

    def __exit__(self, *exc: object) -> None: ...


def companion_folder(path: str | Path) -> Path | None:
    """The data folder a slide file depends on (MIRAX: ``slide.mrxs`` + ``slide/``), or None."""
    p = Path(path)
    folder = p.with_suffix("")
    return folder if p.suffix.lower() == ".mrxs" and folder.is_dir() else None


def best_level_for_downsample(level_downsamples: list[float], downsample: float, *, tolerance: float = 1e-3) -> int:
    """The coarsest level whose downsample does not exceed ``downsample`` (never finer than needed,
    never coarser than asked: reading from it and shrinking by the rest loses no resolution)."""
    best = 0
    for index, level_ds in enumerate(level_downsamples):
        if level_ds <= downsample * (1 + tolerance) and level_ds >= level_downsamples[best]:
            best = index
    return best


def rgba_to_rgb(image: Image.Image) -> np.ndarray:
    """RGB ``uint8`` ``[h, w, 3]`` of a (non-premultiplied) RGBA PIL image composited over white.

    Runs in PIL's C code: an opaque region (the usual case) is a plain band drop; faster than the
    same steps on numpy arrays (``benchmarks/slide_read.py``).
    """
    from PIL import Image

    if image.getchannel("A").getextrema()[0] == 255:
        return np.asarray(image.convert("RGB"))
    background = Image.new("RGBA", image.size, (BACKGROUND,) * 3 + (255,))
    return np.asarray(Image.alpha_composite(background, image).convert("RGB"))
