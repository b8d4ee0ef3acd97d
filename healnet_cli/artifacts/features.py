"""Per-slide patch features (``features/<extractor>/<slide_id>.safetensors``), by ``healnet extract``.

One memory-mappable safetensors file holding ``features`` ``[N, D]`` (float16 by default, or
float32) and ``coords`` ``[N, 2]`` (int64, level-0 top-left, the same order as the features), with
the provenance as JSON under the metadata key ``healnet``: ``schema``, ``slide_id``, ``case_id``,
``extractor``, ``dim``, ``weights`` (file name + sha256, or ``"random-init"``, or the hub tag),
``transform`` (input size, mean, std, interpolation), ``precision``, ``dtype``, ``patch_mpp``,
``healnet_version``. A slide without patches has ``features`` of shape ``(0, D)``.

Additive keys (all optional, readers must not require them): ``output``, ``architecture``,
``encoder_args`` (extract); ``patch_px_level0``, ``patch_mpp_source``, ``slide_mpp`` and ``source``
(the importing tool, its files and what they recorded) for features brought in by
``healnet import-features``, whose ``weights`` is ``{"source": "imported", "tool", "encoder"}``.
:func:`encoder_identity` is what must match for features to be used together.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from healnet_cli import __version__
from healnet_cli.core import atomic
from healnet_cli.core.errors import InputError

SCHEMA = "healnet.features/1"
SUFFIX = ".safetensors"
_HINT = "rerun `healnet extract`"

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass
class FeatureBag:
    """The features of one slide, their patch coordinates and provenance."""

    features: torch.Tensor  # [N, D]
    coords: torch.Tensor  # [N, 2] int64
    provenance: dict[str, Any]

    @property
    def slide_id(self) -> str:
        return str(self.provenance["slide_id"])

    @property
    def case_id(self) -> str:
        return str(self.provenance.get("case_id") or self.provenance["slide_id"])


def weights_key(weights: dict[str, Any] | None) -> str:
    """A short string identifying the weights recorded in a provenance ``weights`` entry."""
    weights = weights or {}
    source = weights.get("source", "none")
    if source == "file":
        return f"sha256:{weights.get('sha256', '')}"
    if source == "hub":
        sha = str(weights.get("sha256", ""))
        return f"hub:{weights.get('tag', '')}" + (f"@{sha[:16]}" if sha else "")
    if source == "random-init":
        return f"random-init:seed{weights.get('seed')}"
    if source == "imported":
        return f"imported:{weights.get('tool', '')}:{weights.get('encoder', '')}"
    return str(source)


def encoder_identity(provenance: dict[str, Any]) -> str:
    """What makes two slides' features comparable: the encoder name, its build arguments and its
    weights (``"uni sha256:…"``, ``"uni imported:trident:uni_v1"``)."""
    parts = [str(provenance.get("extractor", "?"))]
    if provenance.get("encoder_args"):
        parts.append(json.dumps(provenance["encoder_args"], sort_keys=True, default=str))
    parts.append(weights_key(provenance.get("weights")))
    return " ".join(parts)


def short_identity(identity: str) -> str:
    """``encoder_identity`` with sha256 digests cut to 12 characters, for messages."""
    return re.sub(r"(sha256:[0-9a-f]{12})[0-9a-f]+", r"\1…", identity)


def features_path(features_dir: str | os.PathLike[str], slide_id: str) -> Path:
    return Path(features_dir) / f"{slide_id}{SUFFIX}"


def write_features(
    path: str | os.PathLike[str], features: torch.Tensor, coords: torch.Tensor, provenance: dict[str, Any]
) -> Path:
    """Atomically write a slide's features, coordinates and provenance."""
    import torch
    from safetensors.torch import save_file

    if features.ndim != 2 or coords.ndim != 2 or coords.shape[1] != 2 or features.shape[0] != coords.shape[0]:
        raise ValueError(f"features {tuple(features.shape)} and coords {tuple(coords.shape)} do not match")
    meta = {
        **provenance,
        "schema": SCHEMA,
        "dim": int(features.shape[1]),
        "n_patches": int(features.shape[0]),
        "dtype": str(features.dtype).replace("torch.", ""),
        "healnet_version": __version__,
    }
    tensors = {"features": features.contiguous().cpu(), "coords": coords.to(torch.int64).contiguous().cpu()}
    with atomic.atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"healnet": json.dumps(meta, default=str)})
    return Path(path)


def read_provenance(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The provenance of a features file (reads the header only)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get("healnet")
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types on corrupt files
        raise InputError(f"{path}: not a readable features file ({exc}); {_HINT}") from exc
    if raw is None:
        raise InputError(f"{path}: no healnet provenance; {_HINT}")
    meta = json.loads(raw)
    if meta.get("schema") != SCHEMA:
        raise InputError(f"{path}: schema {meta.get('schema')!r}, expected {SCHEMA!r}; {_HINT}")
    return meta


def read_features(path: str | os.PathLike[str]) -> FeatureBag:
    """Read a features file (memory-mapped by safetensors) and validate shapes."""
    from safetensors import safe_open

    meta = read_provenance(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            features = handle.get_tensor("features")
            coords = handle.get_tensor("coords")
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{path}: cannot read tensors ({exc}); {_HINT}") from exc
    if features.ndim != 2 or coords.shape != (features.shape[0], 2):
        raise InputError(f"{path}: features {tuple(features.shape)} / coords {tuple(coords.shape)} mismatch; {_HINT}")
    return FeatureBag(features, coords, meta)


def write_clam_pt(path: str | os.PathLike[str], features: torch.Tensor) -> Path:
    """Atomically write CLAM-style ``pt_files/<slide>.pt``: the ``float32 [N, D]`` features tensor only.

    CLAM and its forks (``torch.load(path)``) train on these; float32 because their models are.
    """
    import torch

    with atomic.atomic_path(path) as tmp:
        torch.save(features.detach().to(torch.float32).contiguous().cpu(), str(tmp))
    return Path(path)


def folder_identities(folder: str | os.PathLike[str]) -> dict[str, list[str]]:
    """``{encoder_identity: [slide_id, ...]}`` of the features files in ``folder`` (headers only;
    unreadable files are left to the stage that reads them)."""
    out: dict[str, list[str]] = {}
    for path in sorted(Path(folder).glob(f"*{SUFFIX}")):
        if path.name.startswith(atomic.TMP_PREFIX) or path.name.startswith("."):
            continue
        try:
            meta = read_provenance(path)
        except InputError:
            continue
        out.setdefault(encoder_identity(meta), []).append(str(meta.get("slide_id", path.stem)))
    return out


def check_folder_identity(folder: str | os.PathLike[str], identity: str, *, force: bool) -> None:
    """Refuse to write features of ``identity`` into a folder that holds features of another
    encoder or other weights, unless ``force`` (which replaces them slide by slide).

    Raises
    ------
    InputError
        The folder holds other features and ``force`` is not set; the message names both and the fix.
    """
    others = {other: slides for other, slides in folder_identities(folder).items() if other != identity}
    if not others or force:
        return
    other, slides = max(others.items(), key=lambda kv: len(kv[1]))
    examples = ", ".join(slides[:3]) + (", ..." if len(slides) > 3 else "")
    raise InputError(
        f"{folder} holds features of {short_identity(other)} ({len(slides)} slide(s): {examples}); this run makes "
        f"{short_identity(identity)}. Pass --name NAME to write them to a folder of their own beside these, "
        "or --force to replace them"
    )
