"""OpenSlide reader (openslide-python + the openslide-bin wheel): SVS, TIFF, NDPI, MRXS, SCN, ...

The handle is opened per process: after a ``fork`` (DataLoader workers) the first read reopens
the file, so no OpenSlide handle is ever shared between processes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from healnet_cli.core.errors import ItemError
from healnet_cli.slides._handle import ProcessLocalHandle
from healnet_cli.slides.base import rgba_to_rgb

BACKEND = "openslide"


class OpenSlideReader(ProcessLocalHandle):
    """A slide read through OpenSlide.

    Parameters
    ----------
    path
        The slide file (for MIRAX, the ``.mrxs`` file beside its data folder).

    Raises
    ------
    ItemError
        When OpenSlide cannot open the file (unsupported, truncated or corrupt).
    """

    backend = BACKEND
    #: OpenSlide handles may be used from several threads at once.
    thread_safe = True

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._handle = None
        self._pid = -1
        handle = self._open()
        self.dimensions: tuple[int, int] = tuple(int(v) for v in handle.dimensions)  # type: ignore[assignment]
        self.level_count: int = int(handle.level_count)
        self.level_dimensions: list[tuple[int, int]] = [(int(w), int(h)) for w, h in handle.level_dimensions]
        self.level_downsamples: list[float] = [float(d) for d in handle.level_downsamples]
        self.properties: Mapping[str, str] = dict(handle.properties)
        if min(self.dimensions) < 1:
            self.close()
            raise ItemError(f"{self.path}: slide has no pixels (dimensions {self.dimensions}); check the file")

    def _open(self):
        """The OpenSlide handle of this process (reopened after a fork)."""
        if self._handle is not None and self._pid == os.getpid():
            return self._handle
        import openslide

        try:
            handle = openslide.OpenSlide(str(self.path))
        except openslide.OpenSlideUnsupportedFormatError as exc:
            raise ItemError(
                f"{self.path}: not a slide format OpenSlide can read ({_reason(exc) or 'unsupported format'}); "
                "check the file or convert it to a pyramidal TIFF"
            ) from exc
        except (openslide.OpenSlideError, OSError) as exc:
            raise ItemError(
                f"{self.path}: cannot open slide ({_reason(exc)}); the file may be truncated or corrupt"
            ) from exc
        self._handle, self._pid = handle, os.getpid()
        return handle

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """RGB ``uint8`` ``[h, w, 3]`` (see :class:`healnet_cli.slides.base.SlideReader`)."""
        import openslide

        handle = self._open()
        try:
            image = handle.read_region((int(location[0]), int(location[1])), int(level), (int(size[0]), int(size[1])))
        except openslide.OpenSlideError as exc:
            self._handle = None  # OpenSlide handles are unusable after an error
            raise ItemError(
                f"{self.path}: cannot read pixels at {tuple(location)} level {level} ({_reason(exc)}); "
                "the file may be truncated or corrupt"
            ) from exc
        return rgba_to_rgb(image)

    def __repr__(self) -> str:
        return f"OpenSlideReader({str(self.path)!r}, dimensions={self.dimensions}, levels={self.level_count})"


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split())
