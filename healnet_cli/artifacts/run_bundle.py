"""Fold bundles: ``fold_<k>/checkpoint.pt`` (and ``refit/checkpoint.pt``), one file per model of a run.

A bundle is a dict of primitives and tensors (``torch.load(path, weights_only=True)``) with the
schema ``healnet.fold/2``:

* ``model``: member 0 as the model registry writes it (``{name, config, state_dict}``), and
  ``ensemble: {combine, members: [...]}`` for the other members of a seed ensemble;
* ``model_name``, ``modalities`` (input order), ``loss`` (``nll`` or ``cox``; ``coxnet`` is ``cox``),
  ``fold`` (``-1`` for the refit), ``kind`` (``fold`` or ``refit``), ``bin_edges``, ``breslow``
  (``{times, cum_hazard}`` for Cox-type models);
* ``preprocess``: per omics modality the fitted state (kept feature names, winsorising bounds,
  mean, sd, medians), ``wsi``: the bag scaler;
* ``provenance``: what the inputs were (``wsi``: extractor, weights, patch_mpp, patch_px, dim as the
  training slides' feature files record them; per omics table its file, fingerprint and number
  of columns), ``inputs_fingerprint`` (all training input files combined);
* ``training``: the fit's record (``best_epochs`` per member for networks, ``alpha`` for coxnet, the
  epochs of a refit), ``wsi_dim``, ``seed``.

Bundles without ``schema`` were written by healnet before this contract (run schema 1); they are
read as ``schema_version == 1`` and upgraded by :mod:`healnet_cli.data.inference`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from healnet_cli import __version__
from healnet_cli.artifacts.features import read_provenance
from healnet_cli.artifacts.run import HINT
from healnet_cli.core import atomic
from healnet_cli.core.errors import InputError

FOLD_SCHEMA = "healnet.fold/2"
FOLD_SCHEMA_VERSION = 2
#: Provenance fields of WSI features that make two feature sets interchangeable for a model.
PROVENANCE_KEYS = ("extractor", "weights", "patch_mpp", "patch_px", "dim")


def write_bundle(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Atomically write a bundle (primitives and tensors only) with its schema."""
    import torch

    with atomic.atomic_path(path) as tmp:
        torch.save({**payload, "schema": FOLD_SCHEMA, "healnet_version": __version__}, tmp)
    return Path(path)


def read_bundle(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A bundle with ``schema_version`` set (1 for bundles of schema-1 runs).

    Raises
    ------
    InputError
        Missing, unreadable or of a newer schema.
    """
    import pickle

    import torch

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p} not found; {HINT}")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise InputError(f"{p}: not a readable checkpoint ({' '.join(str(exc).split())[:200]}); {HINT}") from exc
    if not isinstance(payload, dict) or "model" not in payload or "preprocess" not in payload:
        raise InputError(f"{p}: not a healnet fold checkpoint (no model / preprocess); {HINT}")
    schema = str(payload.get("schema", "healnet.fold/1"))
    version = schema.partition("/")[2]
    if not version.isdigit() or int(version) > FOLD_SCHEMA_VERSION:
        raise InputError(
            f"{p}: checkpoint schema {schema!r} is newer than this healnet ({__version__}) reads "
            f"({FOLD_SCHEMA}); upgrade healnet"
        )
    return {**payload, "schema_version": int(version)}


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def feature_provenance(paths: Iterable[str | os.PathLike[str]]) -> dict[str, Any]:
    """What a set of feature files says about how they were made.

    Returns ``{key: value}`` for the :data:`PROVENANCE_KEYS` the files record, ``n_files``, and
    ``mixed``: the keys with several values across files (those map to the list of the values, in
    first-seen order).
    """
    seen: dict[str, dict[str, Any]] = {k: {} for k in PROVENANCE_KEYS}
    n = 0
    for path in paths:
        meta = read_provenance(path)
        n += 1
        for key in PROVENANCE_KEYS:
            if meta.get(key) is not None:
                seen[key].setdefault(_key(meta[key]), meta[key])
    out: dict[str, Any] = {"n_files": n, "mixed": []}
    for key, values in seen.items():
        if values:
            vals = list(values.values())
            out[key] = vals[0] if len(vals) == 1 else vals
            if len(vals) > 1:
                out["mixed"].append(key)
    return out


def provenance_values(provenance: dict[str, Any], key: str) -> list[Any]:
    """The values of ``key`` in a :func:`feature_provenance` summary (``[]`` when not recorded)."""
    if key not in provenance:
        return []
    return list(provenance[key]) if key in provenance.get("mixed", []) else [provenance[key]]
