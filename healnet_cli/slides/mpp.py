"""Resolve a slide's level-0 resolution (µm per pixel) and record where it came from.

Order: the override (``--mpp-csv`` / ``--slides-csv`` column ``mpp``); OpenSlide's
``openslide.mpp-x``/``-y``; the TIFF resolution tags (centimetre or inch); vendor fields (Aperio
``MPP``, MIRAX, Hamamatsu, an ``MPP = x`` in the image description); the objective power
(10 / power); ``--default-mpp``. Values outside :data:`MPP_RANGE` (e.g. a 72-dpi tag from an
image editor) are not trusted and the next source is tried. Without any, the slide fails with a
reason that names ``--mpp-csv``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from healnet_cli.core.errors import ItemError
from healnet_cli.slides.base import SlideReader

#: Plausible level-0 resolutions of a microscope scan (µm/px); anything else is ignored metadata.
MPP_RANGE = (0.05, 50.0)
_UM_PER_UNIT = {"centimeter": 1e4, "centimetre": 1e4, "cm": 1e4, "inch": 25400.0, "3": 1e4, "2": 25400.0}
_VENDOR_KEYS = ("aperio.MPP", "openslide.mirax.MPP", "mirax.GENERAL.MPP")
_DESCRIPTION_MPP = re.compile(r"\bMPP\s*=\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)")
_POWER_KEYS = ("openslide.objective-power", "aperio.AppMag", "hamamatsu.SourceLens")


def resolve_mpp(reader: SlideReader, *, override: float | None, default_mpp: float | None) -> tuple[float, str]:
    """The slide's level-0 µm/px and its source.

    Parameters
    ----------
    reader
        An open slide (its ``properties`` are searched).
    override
        The value from ``--mpp-csv`` or ``--slides-csv`` for this slide, if any.
    default_mpp
        ``--default-mpp``: used only when the slide carries no resolution at all.

    Returns
    -------
    tuple[float, str]
        ``(mpp, source)``; source is ``"csv"``, the property key used, ``"objective-power"`` (with
        the key) or ``"default"``.

    Raises
    ------
    ItemError
        When no source gives a plausible value.
    """
    if override is not None:
        value = _checked(override)
        if value is None:
            raise ItemError(
                f"{reader.path}: mpp {override!r} from the CSV is not a positive number in {MPP_RANGE} µm/px"
            )
        return value, "csv"
    found = mpp_from_properties(reader.properties)
    if found is not None:
        return found
    if default_mpp is not None:
        value = _checked(default_mpp)
        if value is None:
            raise ItemError(f"--default-mpp {default_mpp!r} is not a positive number in {MPP_RANGE} µm/px")
        return value, "default"
    raise ItemError(
        f"{reader.path}: no resolution (mpp) in the slide metadata; give it with --mpp-csv (columns slide_id,mpp), "
        "an mpp column in --slides-csv, or --default-mpp"
    )


def mpp_from_properties(props: Mapping[str, str]) -> tuple[float, str] | None:
    """The first plausible mpp in the slide properties (everything but the CSV and the default)."""
    for finder in (_openslide_mpp, _tiff_resolution_mpp, _vendor_mpp, _objective_power_mpp):
        found = finder(props)
        if found is not None:
            return found
    return None


def _openslide_mpp(props: Mapping[str, str]) -> tuple[float, str] | None:
    x, y = _checked(props.get("openslide.mpp-x")), _checked(props.get("openslide.mpp-y"))
    if x is not None and y is not None:
        return (x + y) / 2, "openslide.mpp-x"
    if x is not None:
        return x, "openslide.mpp-x"
    if y is not None:
        return y, "openslide.mpp-y"
    return None


def _tiff_resolution_mpp(props: Mapping[str, str]) -> tuple[float, str] | None:
    unit = str(props.get("tiff.ResolutionUnit", "")).strip().lower()
    per_unit = _UM_PER_UNIT.get(unit)
    if per_unit is None:
        return None
    values = []
    for key in ("tiff.XResolution", "tiff.YResolution"):
        res = _number(props.get(key))
        if res is not None and res > 0:
            values.append(per_unit / res)
    if not values:
        return None
    mpp = _checked(sum(values) / len(values))
    return None if mpp is None else (mpp, f"tiff.XResolution ({unit})")


def _vendor_mpp(props: Mapping[str, str]) -> tuple[float, str] | None:
    for key in _VENDOR_KEYS:
        value = _checked(props.get(key))
        if value is not None:
            return value, key
    for key in ("tiff.ImageDescription", "openslide.comment"):
        match = _DESCRIPTION_MPP.search(str(props.get(key, "")))
        if match:
            value = _checked(match.group(1))
            if value is not None:
                return value, f"{key} MPP"
    return None


def _objective_power_mpp(props: Mapping[str, str]) -> tuple[float, str] | None:
    for key in _POWER_KEYS:
        power = _number(props.get(key))
        if power is not None and power > 0:
            value = _checked(10.0 / power)
            if value is not None:
                return value, f"objective-power ({key})"
    return None


def _number(value: object) -> float | None:
    if value is None:
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _checked(value: object) -> float | None:
    number = _number(value)
    if number is None or not MPP_RANGE[0] <= number <= MPP_RANGE[1]:
        return None
    return number
