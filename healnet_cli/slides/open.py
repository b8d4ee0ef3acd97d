"""Open a slide with the backend its extension calls for."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from healnet_cli.core.errors import ItemError
from healnet_cli.slides.base import IMAGE_EXTENSIONS, SLIDE_EXTENSIONS, SlideReader


def _openslide(path: Path) -> SlideReader:
    from healnet_cli.slides.openslide_backend import OpenSlideReader

    return OpenSlideReader(path)


def _image(path: Path) -> SlideReader:
    from healnet_cli.slides.image_backend import ImageReader

    return ImageReader(path)


def _tifffile(path: Path) -> SlideReader:
    from healnet_cli.slides.tifffile_backend import TiffFileReader

    return TiffFileReader(path)


#: Backend name -> opener. Imports are lazy so that ``healnet --help`` does not load OpenSlide.
BACKENDS: dict[str, Callable[[Path], SlideReader]] = {"openslide": _openslide, "image": _image, "tifffile": _tifffile}
#: Extensions retried with tifffile when OpenSlide rejects the format (flat, strip-organised TIFFs).
TIFF_FALLBACK_EXTENSIONS = (".tif", ".tiff")


def backend_for(path: str | os.PathLike[str]) -> str:
    """The backend name for ``path``'s extension (``"image"`` for PNG/JPEG, else ``"openslide"``)."""
    return "image" if Path(path).suffix.lower() in IMAGE_EXTENSIONS else "openslide"


def open_slide(path: str | os.PathLike[str], *, backend: str | None = None) -> SlideReader:
    """Open ``path`` for reading.

    Parameters
    ----------
    path
        A whole-slide file (``SLIDE_EXTENSIONS``).
    backend
        Force a backend (a key of :data:`BACKENDS`); by default chosen from the extension, and a
        ``.tif``/``.tiff`` that OpenSlide rejects (e.g. a flat, strip-organised TIFF) is retried with
        tifffile.

    Raises
    ------
    ItemError
        The file is missing, has an unsupported extension, or cannot be read (the message names it).
    """
    p = Path(path)
    if backend is None:
        if p.suffix.lower() not in SLIDE_EXTENSIONS:
            raise ItemError(
                f"{p}: unsupported extension {p.suffix or '(none)'!r}; expected one of {', '.join(SLIDE_EXTENSIONS)}"
            )
        backend = backend_for(p)
    if backend not in BACKENDS:
        raise ItemError(f"{p}: unknown slide backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if not p.exists():
        raise ItemError(f"{p}: file not found; check the path")
    try:
        return BACKENDS[backend](p)
    except ItemError as exc:
        if backend != "openslide" or p.suffix.lower() not in TIFF_FALLBACK_EXTENSIONS or not _unsupported(exc):
            raise
        try:
            return _tifffile(p)
        except ItemError:
            raise exc from None


def _unsupported(exc: ItemError) -> bool:
    """True when OpenSlide rejected the format (as opposed to a damaged file of a known format)."""
    import openslide

    return isinstance(exc.__cause__, openslide.OpenSlideUnsupportedFormatError)
