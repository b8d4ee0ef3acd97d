"""The slides of one ``healnet tile`` run: from files, folders and ``--slides-csv``; ids, case ids and
per-slide mpp overrides. Bad options and tables fail before any work (``InputError``, exit 2); a
slide that cannot be read (no permission, a dangling symlink, a symlink loop) fails on its own
when it is fingerprinted (:func:`unreadable_reason`), the others are tiled."""

from __future__ import annotations

import errno
import math
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from healnet_cli.artifacts.patients import to_patient_id
from healnet_cli.core.csv_table import read_csv_table
from healnet_cli.core.errors import InputError
from healnet_cli.slides.base import SLIDE_EXTENSIONS

if TYPE_CHECKING:
    import pandas as pd

_MAX_LISTED = 10


@dataclass(frozen=True)
class SlideInput:
    """One slide to tile."""

    slide_id: str
    path: Path
    case_id: str
    mpp_override: float | None = None
    problem: str = ""


def slide_id_of(path: Path) -> str:
    """The slide id: the file name without its extension."""
    return path.stem if path.suffix else path.name


def collect_slides(
    paths: list[Path], *, slides_csv: Path | None = None, mpp_csv: Path | None = None
) -> list[SlideInput]:
    """Every slide named on the command line (files, folders searched recursively) or in
    ``slides_csv``, with case ids and mpp overrides; sorted by slide id.

    Raises
    ------
    InputError
        A missing path, a file with an unsupported extension, a malformed CSV, an empty selection,
        or two slides with the same id.
    """
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise InputError(f"slide path(s) not found: {_listed(missing)}; check the path(s)")
    found: list[tuple[Path, str | None, float | None]] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found.extend((p, None, None) for p in _walk(path))
        elif path.suffix.lower() in SLIDE_EXTENSIONS:
            found.append((path, None, None))
        else:
            raise InputError(
                f"{path}: unsupported extension {path.suffix or '(none)'!r}; slides must be one of "
                f"{', '.join(SLIDE_EXTENSIONS)} (or list them in --slides-csv)"
            )
    if slides_csv is not None:
        found.extend(read_slides_csv(slides_csv))
    if not found:
        where = ", ".join(str(p) for p in paths) or str(slides_csv)
        raise InputError(f"no slides found in {where}; expected files with extensions {', '.join(SLIDE_EXTENSIONS)}")
    by_id: dict[str, list[tuple[Path, str | None, float | None]]] = defaultdict(list)
    for entry in found:
        by_id[slide_id_of(entry[0])].append(entry)
    duplicates = {sid: sorted({_resolved(e[0]) for e in entries}) for sid, entries in by_id.items()}
    duplicates = {sid: files for sid, files in duplicates.items() if len(files) > 1}
    if duplicates:
        listed = "; ".join(f"{sid}: {', '.join(files)}" for sid, files in sorted(duplicates.items())[:_MAX_LISTED])
        raise InputError(
            f"{len(duplicates)} slide id(s) occur more than once (the id is the file name without extension): "
            f"{listed}; rename the files or tile them in separate workdirs"
        )
    overrides = read_mpp_csv(mpp_csv) if mpp_csv is not None else {}
    slides = []
    for sid, entries in by_id.items():
        path = entries[0][0]
        case = to_patient_id(next((e[1] for e in entries if e[1]), None) or sid)
        mpp = overrides.get(sid)
        if mpp is None:
            mpp = next((e[2] for e in entries if e[2] is not None), None)
        slides.append(SlideInput(sid, path, case, mpp))
    return sorted(slides, key=lambda s: s.slide_id)


def _resolved(path: Path) -> str:
    """The real path of ``path``; the absolute path itself for a symlink loop."""
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):  # RuntimeError: symlink loop (Python < 3.13)
        return str(path.absolute())


def unreadable_reason(path: Path, exc: OSError) -> str:
    """A one-line reason, with the fix, for a slide that could not be opened."""
    if exc.errno == errno.ELOOP:
        return f"{path}: symlink loop; point the link at the slide file or remove it"
    if os.path.islink(path) and not os.path.exists(path):
        return f"{path}: dangling symlink to {os.readlink(path)}; fix or remove the link"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{path}: permission denied; make the slide readable (chmod a+r) or leave it out"
    return f"{path}: cannot be read ({exc.strerror or exc}); check the file"


def _walk(folder: Path) -> list[Path]:
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in SLIDE_EXTENSIONS:
                out.append(Path(root) / name)
    return out


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    frame = read_csv_table(path, what)
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    return frame


def _mpp_value(text: str, where: str) -> float | None:
    text = str(text).strip()
    if text == "" or text.lower() in ("na", "nan", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{where}: mpp {text!r} is not a positive number (µm per pixel, e.g. 0.25 or 0.5)")
    return value


def read_slides_csv(path: Path) -> list[tuple[Path, str | None, float | None]]:
    """Rows of ``--slides-csv``: column ``path`` (relative paths are relative to the CSV's folder),
    optional ``case_id`` and ``mpp``."""
    frame = _read_csv(path, "--slides-csv")
    if "path" not in frame.columns:
        raise InputError(
            f"--slides-csv {path}: no 'path' column (found: {', '.join(frame.columns) or 'none'}); "
            "columns are path, optional case_id, optional mpp"
        )
    base = Path(path).parent
    rows, missing, bad_ext = [], [], []
    seen: dict[str, tuple[int, float]] = {}
    for i, row in frame.iterrows():
        text = str(row["path"]).strip()
        if not text:
            continue
        slide = Path(text).expanduser()
        slide = slide if slide.is_absolute() else base / slide
        if not slide.exists():
            missing.append(str(slide))
            continue
        if slide.suffix.lower() not in SLIDE_EXTENSIONS:
            bad_ext.append(str(slide))
            continue
        case = str(row.get("case_id", "")).strip() or None
        mpp = _mpp_value(row.get("mpp", ""), f"--slides-csv {path} row {i + 2}")
        if mpp is not None:
            key = _resolved(slide)
            if key in seen and seen[key][1] != mpp:
                raise InputError(
                    f"--slides-csv {path}: {slide} has mpp {seen[key][1]:g} in row {seen[key][0]} and {mpp:g} in row "
                    f"{i + 2}; "
                    "keep one row per slide"
                )
            seen[key] = (i + 2, mpp)
        rows.append((slide, case, mpp))
    if missing:
        raise InputError(
            f"--slides-csv {path}: {len(missing)} slide file(s) not found: {_listed(missing)}; fix the paths"
        )
    if bad_ext:
        raise InputError(
            f"--slides-csv {path}: unsupported extension(s): {_listed(bad_ext)}; slides must be one of "
            f"{', '.join(SLIDE_EXTENSIONS)}"
        )
    return rows


def read_mpp_csv(path: Path) -> dict[str, float]:
    """``--mpp-csv``: columns ``slide_id`` (or ``path``/``slide``; matched on the file stem) and ``mpp``."""
    frame = _read_csv(path, "--mpp-csv")
    key = next((c for c in ("slide_id", "slide", "path", "wsi") if c in frame.columns), None)
    if key is None or "mpp" not in frame.columns:
        raise InputError(
            f"--mpp-csv {path}: needs columns slide_id and mpp (found: {', '.join(frame.columns) or 'none'})"
        )
    out: dict[str, float] = {}
    rows: dict[str, int] = {}
    for i, row in frame.iterrows():
        name = str(row[key]).strip()
        if not name:
            continue
        value = _mpp_value(row["mpp"], f"--mpp-csv {path} row {i + 2}")
        if value is not None:
            sid = slide_id_of(Path(name)) if Path(name).suffix.lower() in SLIDE_EXTENSIONS else name
            if sid in out and out[sid] != value:
                raise InputError(
                    f"--mpp-csv {path}: slide {sid!r} has mpp {out[sid]:g} in row {rows[sid]} and {value:g} in row "
                    f"{i + 2}; "
                    "keep one row per slide"
                )
            out[sid], rows[sid] = value, i + 2
    return out


def _listed(items: list[str]) -> str:
    more = f" (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
    return ", ".join(items[:_MAX_LISTED]) + more
