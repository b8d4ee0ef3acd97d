"""Is an external workspace compatible with a trained run? Checked before any prediction.

* **WSI features**: every external feature file must record the extractor, the weights (sha256 when
  both sides have one, else source / tag / file / seed), the patch size in µm/px (relative
  tolerance 1e-3) and in pixels, and the dimension of the run's training slides
  (``run.json → features.wsi``). A key the run did not record is not checked (a warning says so);
  a key the run recorded but an external file lacks is a mismatch.
* **omics tables**: the share of the run's features (every used fold's kept features) that the
  external table has (a column with at least one value) must reach ``--min-feature-overlap``; the
  missing ones are imputed with each fold's training medians and counted per modality.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from healnet_cli.artifacts.features import read_provenance
from healnet_cli.artifacts.run_bundle import PROVENANCE_KEYS, feature_provenance, provenance_values
from healnet_cli.core.errors import InputError

MPP_RTOL = 1e-3
MAX_LISTED = 20


def _weights_key(w: Any) -> Any:
    if isinstance(w, Mapping):
        if w.get("sha256"):
            return ("sha256", str(w["sha256"]))
        return tuple(sorted((str(k), str(v)) for k, v in w.items()))
    return str(w)


def same_value(key: str, a: Any, b: Any) -> bool:
    """Whether two provenance values of ``key`` describe the same features."""
    if key == "weights":
        return _weights_key(a) == _weights_key(b)
    if key == "patch_mpp":
        try:
            return math.isclose(float(a), float(b), rel_tol=MPP_RTOL)
        except (TypeError, ValueError):
            return False
    if key in ("patch_px", "dim"):
        try:
            return int(a) == int(b)
        except (TypeError, ValueError):
            return False
    return a == b


def _show(key: str, value: Any) -> str:
    if key == "weights" and isinstance(value, Mapping):
        if value.get("sha256"):
            return f"{value.get('file') or value.get('tag') or 'weights'} (sha256 {str(value['sha256'])[:12]}…)"
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items()))
    return str(value)


FIX = {
    "extractor": "extract the external slides with the run's extractor (`healnet extract --extractor {value}`)",
    "weights": "extract the external slides with the run's weights file (`healnet extract --weights FILE`)",
    "patch_mpp": "tile the external slides at the run's resolution (`healnet tile --mpp {value}`) and extract again",
    "patch_px": (
        "tile the external slides with the run's patch size (`healnet tile --patch-size {value}`) and extract again"
    ),
    "dim": "extract the external slides with the run's extractor",
}


def check_wsi(run_provenance: Mapping[str, Any], paths: Sequence[Path]) -> tuple[dict[str, Any], list[str]]:
    """Compare every external feature file with the run's training features.

    Returns the external provenance summary and warnings (keys the run did not record).

    Raises
    ------
    InputError
        The first file whose extractor, weights, patch mpp/px or dimension differs (the message
        names the file, both values and the fix).
    """
    warnings = []
    checked = [k for k in PROVENANCE_KEYS if provenance_values(dict(run_provenance), k)]
    for key in PROVENANCE_KEYS:
        if key not in checked:
            warnings.append(f"wsi: the run recorded no {key} for its features; not checked")
    for path in paths:
        meta = read_provenance(path)
        for key in checked:
            run_values = provenance_values(dict(run_provenance), key)
            value = meta.get(key)
            if value is not None and any(same_value(key, value, r) for r in run_values):
                continue
            trained = " or ".join(_show(key, r) for r in run_values)
            found = "no " + key if value is None else f"{key} {_show(key, value)}"
            raise InputError(
                f"{path}: {found}, but the run was trained on features with {key} {trained}; "
                + FIX[key].format(value=_show(key, run_values[0]))
            )
    return feature_provenance(paths), warnings


def _present_columns(frame: pd.DataFrame) -> set[str]:
    return {str(c) for c in frame.columns[frame.notna().any(axis=0)]}


def check_omics(
    modality: str, kept: Iterable[str], frame: pd.DataFrame, table: Path, min_overlap: float
) -> dict[str, Any]:
    """Overlap of the run's features of ``modality`` with the external table ``frame``.

    Returns ``n_features``, ``n_present``, ``n_imputed``, ``overlap`` and up to 20 ``missing`` names.

    Raises
    ------
    InputError
        The overlap is below ``min_overlap``.
    """
    wanted = list(dict.fromkeys(kept))  # the model input order
    present = _present_columns(frame)
    missing = [f for f in wanted if f not in present]
    overlap = 1.0 - len(missing) / len(wanted) if wanted else 1.0
    if overlap < min_overlap:
        example = ", ".join(missing[:3])
        raise InputError(
            f"{table}: {len(wanted) - len(missing)} of the run's {len(wanted)} {modality} features are present "
            f"({overlap:.0%}; missing e.g. {example}), below --min-feature-overlap {min_overlap:g}; check that the "
            "feature names match the training table's (gene symbols vs ids), or lower --min-feature-overlap to "
            "impute the missing ones with the training medians"
        )
    return {
        "n_features": len(wanted),
        "n_present": len(wanted) - len(missing),
        "n_imputed": len(missing),
        "overlap": overlap,
        "missing": missing[:MAX_LISTED],
    }
