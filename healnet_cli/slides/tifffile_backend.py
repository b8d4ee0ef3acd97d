"""tifffile reader: TIFFs that OpenSlide refuses (strip-organised, non-tiled "flat" TIFFs written by
image editors, ImageJ or microscope software).

Only the segments (strips or tiles) that intersect a requested region are read and decoded, so a
huge flat TIFF is still read in bounded memory. Each level is a page of the main IFD chain or a
level of tifffile's first series (pyramids written as SubIFDs).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from healnet_cli.core.errors import ItemError
from healnet_cli.slides._handle import ProcessLocalHandle
from healnet_cli.slides.tiff_pages import read_page_region

BACKEND = "tifffile"
_UNITS = {1: "none", 2: "inch", 3: "centimeter"}


class TiffFileReader(ProcessLocalHandle):
    """A TIFF read with tifffile (RGB, RGBA or grayscale; 8 or 16 bits).

    Raises
    ------
    ItemError
        When the file is not a TIFF tifffile can read, or has a pixel layout it cannot turn into RGB.
    """

    backend = BACKEND

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._handle = None
        self._pid = -1
        tif = self._open()
        try:
            pages = _level_pages(tif)
            for page in pages:
                _check_layout(self.path, page)
        except ItemError:
            self.close()
            raise
        except Exception as exc:  # malformed tags surface as assorted exceptions
            self.close()
            raise ItemError(f"{self.path}: cannot read TIFF structure ({' '.join(str(exc).split())})") from exc
        self.dimensions = (int(pages[0].imagewidth), int(pages[0].imagelength))
        self.level_count = len(pages)
        self.level_dimensions = [(int(p.imagewidth), int(p.imagelength)) for p in pages]
        self.level_downsamples = [
            (self.dimensions[0] / w + self.dimensions[1] / h) / 2 for w, h in self.level_dimensions
        ]
        self.properties: Mapping[str, str] = _properties(pages[0])

    def _open(self):
        if self._handle is not None and self._pid == os.getpid():
            return self._handle
        import tifffile

        try:
            handle = tifffile.TiffFile(self.path)
            _ = handle.pages[0]
        except Exception as exc:  # tifffile raises TiffFileError, ValueError, struct.error, ...
            raise ItemError(
                f"{self.path}: not a readable TIFF ({' '.join(str(exc).split())}); the file may be truncated or corrupt"
            ) from exc
        self._handle, self._pid = handle, os.getpid()
        return handle

    def _page(self, level: int):
        return _level_pages(self._open())[level]

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """RGB ``uint8`` ``[h, w, 3]``; areas outside the image are white."""
        page = self._page(int(level))
        ds = self.level_downsamples[int(level)]
        x = int(round(location[0] / ds))
        y = int(round(location[1] / ds))
        return read_page_region(page, self.path, x, y, int(size[0]), int(size[1]), self._fetch)

    def _fetch(self, offset: int, count: int) -> bytes:
        fh = self._open().filehandle
        fh.seek(offset)
        return fh.read(count)


def _level_pages(tif) -> list:
    series = tif.series[0] if tif.series else None
    if series is not None and len(series.levels) > 1:
        return [level.keyframe for level in series.levels]
    first = tif.pages[0]
    pages = [first]
    for page in tif.pages[1:]:
        page = page.keyframe if hasattr(page, "keyframe") else page
        prev = pages[-1]
        if (
            page.imagewidth < prev.imagewidth
            and page.imagelength < prev.imagelength
            and page.samplesperpixel == first.samplesperpixel
            and abs(page.imagewidth / page.imagelength - first.imagewidth / first.imagelength)
            < 0.05 * first.imagewidth / first.imagelength
            and page.is_tiled == first.is_tiled
        ):
            pages.append(page)
    return pages


def _check_layout(path: Path, page) -> None:
    if page.planarconfig != 1 and page.samplesperpixel > 1:
        raise ItemError(
            f"{path}: planar (separate-channel) TIFF layout is not supported; convert it to a pyramidal TIFF"
        )
    if page.dtype is None or np.dtype(page.dtype) not in (np.dtype(np.uint8), np.dtype(np.uint16)):
        raise ItemError(f"{path}: {page.dtype} pixels are not supported (expected 8- or 16-bit RGB or grayscale)")
    if page.samplesperpixel not in (1, 3, 4):
        raise ItemError(
            f"{path}: {page.samplesperpixel} samples per pixel are not supported (expected RGB, RGBA or gray)"
        )


def _properties(page) -> dict[str, str]:
    props = {"tifffile.compression": str(getattr(page.compression, "name", page.compression))}
    tags = page.tags
    if "ImageDescription" in tags:
        props["tiff.ImageDescription"] = str(tags["ImageDescription"].value)
    for key in ("XResolution", "YResolution"):
        if key in tags:
            value = tags[key].value
            num, den = value if isinstance(value, tuple) else (value, 1)
            if den:
                props[f"tiff.{key}"] = repr(float(num) / float(den))
    if "ResolutionUnit" in tags:
        unit = int(tags["ResolutionUnit"].value)
        props["tiff.ResolutionUnit"] = _UNITS.get(unit, str(unit))
    return props
