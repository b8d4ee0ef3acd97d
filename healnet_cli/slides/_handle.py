"""What every file-backed reader shares: one handle per process, closed by its owner only."""

from __future__ import annotations

import os
from typing import Any, TypeVar

import numpy as np

from healnet_cli.slides.downsample import read_thumbnail

R = TypeVar("R", bound="ProcessLocalHandle")


class ProcessLocalHandle:
    """Mixin for readers holding a lazily opened file handle (``_handle``) owned by process ``_pid``.

    The handle is closed only by the process that opened it and dropped when the reader is pickled, so
    every DataLoader worker opens its own (no handle is shared across ``fork``).
    """

    _handle: Any = None
    _pid: int = -1

    def thumbnail(self, max_px: int) -> np.ndarray:
        """RGB thumbnail, longest side <= ``max_px``, read block by block (bounded memory)."""
        return read_thumbnail(self, max_px)  # type: ignore[arg-type]

    def close(self) -> None:
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = None

    def __enter__(self: R) -> R:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handle"], state["_pid"] = None, -1
        return state
