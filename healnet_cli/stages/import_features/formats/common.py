"""What every feature-file reader shares: the records it returns and safe HDF5 / torch reading.

Files are read with h5py, ``numpy.load(allow_pickle=False)`` and ``torch.load(weights_only=True)``;
nothing is ever unpickled. Every problem with one slide's files is an
:class:`~healnet_cli.core.errors.ItemError` whose message names the file, the problem and the fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from healnet_cli.core.errors import InputError, ItemError, one_line

# dataset names that tell the formats apart when a file is not of the announced one
_SIGNATURES = {"feats": "stamp", "features": "trident or clam", "patch_embeddings": "stamp (no coordinates)"}


@dataclass(frozen=True)
class SourceSlide:
    """One slide's files as found in the source folder."""

    slide_id: str
    features_file: Path
    coords_file: Path | None = None


@dataclass(frozen=True)
class SlideHeader:
    """What a source file says without reading its rows: the encoder it names and the dimension."""

    encoder: str | None
    dim: int | None


@dataclass
class ImportedBag:
    """One slide's features as read from the source, with level-0 coordinates.

    Attributes
    ----------
    features
        ``float [N, D]``.
    coords_level0
        ``int64 [N, 2]`` top-left corners in level-0 pixels (converted from the source's unit).
    patch_px, patch_px_level0, patch_mpp
        Patch size at the patch resolution, at level 0, and the patch resolution (µm/px) where
        known, else ``None``; ``patch_mpp_source`` says where the mpp came from.
    source
        What the source recorded (tool, files, version, attributes) for provenance.
    """

    features: np.ndarray
    coords_level0: np.ndarray
    encoder: str | None
    patch_px: int | None = None
    patch_px_level0: int | None = None
    patch_mpp: float | None = None
    patch_mpp_source: str = ""
    source: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ImportContext:
    """Per-import settings the readers need.

    Attributes
    ----------
    slide_mpp
        ``slide_id -> level-0 µm/px`` (``--slides-csv`` mpp column or ``--slide-mpp``).
    default_slide_mpp
        ``--slide-mpp`` for slides without a CSV value.
    mpp, patch_px
        ``--mpp`` (patch µm/px) and ``--patch-size`` for sources that do not record them.
    """

    slide_mpp: dict[str, float] = field(default_factory=dict)
    default_slide_mpp: float | None = None
    mpp: float | None = None
    patch_px: int | None = None

    def mpp_of(self, slide_id: str) -> float | None:
        return self.slide_mpp.get(slide_id, self.default_slide_mpp)


@contextmanager
def open_h5(path: Path, tool: str) -> Iterator[Any]:
    """An h5py file opened read-only; a file that is not HDF5 is an ItemError naming it."""
    import h5py

    try:
        handle = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise ItemError(
            f"{path}: not a readable HDF5 file ({one_line(exc)}); {tool} writes .h5 features: check the file"
        ) from exc
    try:
        yield handle
    finally:
        handle.close()


def dataset(handle: Any, name: str, path: Path, tool: str) -> Any:
    """Dataset ``name`` of an open h5 file, else an ItemError saying what the file looks like."""
    import h5py

    obj = handle.get(name)
    if isinstance(obj, h5py.Dataset):
        return obj
    found = sorted(handle.keys())
    guess = next((f" (it looks like {fmt}: use --format {fmt.split()[0]})" for key, fmt in _SIGNATURES.items()
                  if key in found and key != name and fmt.split()[0] != tool.lower()), "")  # fmt: skip
    raise ItemError(
        f"{path}: not a {tool} features file: no {name!r} dataset (found: {', '.join(found) or 'nothing'}){guess}"
    )


def attr_dict(obj: Any) -> dict[str, Any]:
    """h5 attributes as plain Python values (numpy scalars and arrays converted, bytes decoded)."""
    out: dict[str, Any] = {}
    for key, value in obj.attrs.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, np.generic):
            value = value.item()
        out[str(key)] = value
    return out


def _torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)``, memory-mapped where the file's format allows it."""
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # files in torch's legacy (pre-1.6, non-zip) format cannot be mapped
        return torch.load(str(path), map_location="cpu", weights_only=True)


def load_tensor_file(path: Path, tool: str) -> np.ndarray:
    """A ``.pt`` file holding one tensor (CLAM ``pt_files``, slideflow bags), without unpickling."""
    import torch

    try:
        value = _torch_load(path)
    except Exception as exc:  # noqa: BLE001 - torch raises many types on bad files
        raise ItemError(
            f"{path}: cannot be read as a {tool} .pt features file ({one_line(exc)[:160]}); it is corrupt, "
            "truncated or holds pickled objects (never unpickled): export the features again"
        ) from exc
    if not isinstance(value, torch.Tensor):
        raise ItemError(
            f"{path}: holds a {type(value).__name__}, not a features tensor; {tool} bags are one [N, D] tensor"
        )
    return value.detach().float().numpy()


def tensor_dim(path: Path) -> int | None:
    """The feature dimension of a one-tensor ``.pt`` file (memory-mapped: cheap), or None."""
    import torch

    try:
        value = _torch_load(path)
    except Exception:  # noqa: BLE001 - the read reports it per slide
        return None
    return int(value.shape[1]) if isinstance(value, torch.Tensor) and value.ndim == 2 else None


def check_rows(features: np.ndarray, coords: np.ndarray, path: Path) -> None:
    """Features ``[N, D]`` and coordinates ``[N, 2]`` with the same N, else an ItemError."""
    if features.ndim != 2:
        raise ItemError(
            f"{path}: features have shape {features.shape}, expected [patches, dim] (slide-level features are not "
            "patch features)"
        )
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ItemError(f"{path}: coordinates have shape {coords.shape}, expected [patches, 2]")
    if features.shape[0] != coords.shape[0]:
        raise ItemError(
            f"{path}: {features.shape[0]} feature rows but {coords.shape[0]} coordinates; the files do not belong "
            "together (features from another patching run?): export them again"
        )


def positive(value: Any) -> float | None:
    """``value`` as a positive finite float, else None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) and number > 0 else None


def unique_by_slide(found: list[SourceSlide], root: Path) -> list[SourceSlide]:
    """Sorted slides; two files with the same slide id is an InputError listing them."""
    by_id: dict[str, list[SourceSlide]] = {}
    for slide in found:
        by_id.setdefault(slide.slide_id, []).append(slide)
    clashes = {k: v for k, v in by_id.items() if len(v) > 1}
    if clashes:
        listed = "; ".join(f"{k}: {', '.join(str(s.features_file) for s in v)}" for k, v in sorted(clashes.items())[:5])
        raise InputError(
            f"{root}: {len(clashes)} slide id(s) occur in more than one file ({listed}); import them separately"
        )
    return sorted(found, key=lambda s: s.slide_id)


def files_under(root: Path, suffix: str, *, recursive: bool = False) -> list[Path]:
    """Files with ``suffix`` under ``root`` (hidden files and temporary names left out)."""
    pattern = f"**/*{suffix}" if recursive else f"*{suffix}"
    return sorted(p for p in root.glob(pattern) if p.is_file() and not p.name.startswith((".", "~")))
