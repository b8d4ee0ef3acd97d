"""Slide access shared by ``healnet tile`` and ``healnet extract``: a small reader interface, one
backend per file (OpenSlide, plain images), bounded-memory downsampled reads and mpp resolution.

Adding a backend (tiffslide, cuCIM): write ``<name>_backend.py`` with a class that satisfies
:class:`SlideReader` and add it to :data:`healnet_cli.slides.open.BACKENDS`.
"""

from healnet_cli.slides.base import IMAGE_EXTENSIONS, SLIDE_EXTENSIONS, WSI_EXTENSIONS, SlideReader
from healnet_cli.slides.downsample import read_downsampled
from healnet_cli.slides.mpp import resolve_mpp
from healnet_cli.slides.open import BACKENDS, backend_for, open_slide

__all__ = [
    "BACKENDS",
    "IMAGE_EXTENSIONS",
    "SLIDE_EXTENSIONS",
    "WSI_EXTENSIONS",
    "SlideReader",
    "backend_for",
    "open_slide",
    "read_downsampled",
    "resolve_mpp",
]
