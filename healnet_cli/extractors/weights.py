"""Weights for extractors: read a local file safely, fit it to a model strictly, or reach the hub.

Policy: exactly one of ``--weights FILE``, ``--pretrained`` (timm's hub, online or from the local
hub cache) or ``--random-init`` (explicit, recorded in provenance). There is no silent fallback.
Files are never unpickled: ``.safetensors`` through safetensors, ``.pth``/``.pt``/``.bin``/``.ckpt``
through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from healnet_cli.artifacts.features import weights_key
from healnet_cli.core.errors import InputError
from healnet_cli.core.fingerprint import sha256_file

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
WEIGHT_SUFFIXES = (".safetensors", *TORCH_SUFFIXES)
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module", "teacher", "network")
_STRIP_PREFIXES = ("module.", "model.", "backbone.", "trunk.", "_orig_mod.")
HUB_HOST = "huggingface.co"
HUB_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")
RANDOM_INIT_SEED = 0


@dataclass(frozen=True)
class WeightsInfo:
    """Where an extractor's weights came from (provenance and cache key)."""

    source: str  # "file", "hub", "random-init" or "none"
    file: str = ""
    sha256: str = ""
    tag: str = ""
    seed: int | None = None

    @property
    def key(self) -> str:
        """Short string that identifies the weights in the cache parameters."""
        return weights_key(self.as_dict())

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in ("", None)}


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a weights file into a flat ``{name: tensor}`` state dict.

    Accepts a raw state dict or the common wrappers (``{"state_dict": ...}``, ``{"model": ...}``,
    ...) and strips DDP/compile prefixes (``module.``, ``_orig_mod.``) shared by every key.

    Raises
    ------
    InputError
        Missing file, unsupported extension, unreadable (corrupt, truncated, pickled objects) or
        not a state dict.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--weights {p}: file not found; check the path (download it on a login node if needed)")
    suffix = p.suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise InputError(f"--weights {p}: unsupported extension {suffix!r}; use one of {', '.join(WEIGHT_SUFFIXES)}")
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            raw: Any = load_file(str(p), device="cpu")
        else:
            raw = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - both loaders raise many types on bad files
        detail = " ".join(str(exc).split())[:200]
        raise InputError(
            f"--weights {p}: cannot be read as {suffix} weights ({type(exc).__name__}: {detail}); "
            "the file is corrupt, truncated or holds pickled objects; download it again or convert it to .safetensors"
        ) from exc
    return _flatten(raw, p)


def _flatten(raw: Any, path: Path) -> dict[str, torch.Tensor]:
    for _ in range(3):
        if isinstance(raw, Mapping):
            inner = next((raw[k] for k in _WRAPPER_KEYS if isinstance(raw.get(k), Mapping)), None)
            if inner is not None and not all(isinstance(v, torch.Tensor) for v in raw.values()):
                raw = inner
                continue
        break
    if not isinstance(raw, Mapping) or not raw:
        raise InputError(f"--weights {path}: not a state dict (found {type(raw).__name__}); save model.state_dict()")
    tensors = {str(k): v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise InputError(f"--weights {path}: holds no tensors; save model.state_dict()")
    for prefix in _STRIP_PREFIXES:
        if all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix) :]: v for k, v in tensors.items()}
    return tensors


def fit_state_dict(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    path: str | os.PathLike[str],
    arch: str,
    ignore_prefixes: Iterable[str] = (),
) -> None:
    """Load ``state`` into ``model`` strictly: every parameter and buffer present with its shape.

    Keys starting with ``ignore_prefixes`` (a classifier head, the layers a truncated backbone
    drops) may be present in the file without being used.

    Raises
    ------
    InputError
        Missing keys, unexpected keys or shape mismatches, naming the file and examples of each.
    """
    expected = model.state_dict()
    ignore = tuple(ignore_prefixes)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected and not k.startswith(ignore)]
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatches (e.g. {'; '.join(mismatched[:2])})")
        raise InputError(
            f"--weights {path}: does not fit the {arch} architecture: {', '.join(parts)}; "
            "pass the weights of that architecture or pick the --extractor that matches the file"
        )
    model.load_state_dict({k: state[k] for k in expected}, strict=True)


def file_weights_info(path: str | os.PathLike[str]) -> WeightsInfo:
    """Provenance of a weights file (name + full sha256)."""
    return WeightsInfo(source="file", file=Path(path).name, sha256=sha256_file(path))


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` asks for offline mode (read at call time)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_reachable(host: str = HUB_HOST, *, timeout_s: float = 3.0) -> bool:
    """Whether a TCP connection to ``host:443`` opens within ``timeout_s`` (DNS included)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, 443), timeout=timeout_s):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout_s + 0.5)
    return bool(result and result[0])


def cached_hub_file(repo: str, files: Iterable[str] = HUB_FILES) -> Path | None:
    """The first of ``files`` of hub repo ``repo`` in the local Hugging Face cache, if any."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - timm depends on huggingface_hub
        return None
    for filename in files:
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def fetch_hub_weights(name: str, repo: str, files: Iterable[str] = HUB_FILES) -> tuple[Path, WeightsInfo]:
    """``--pretrained``: the weights file of ``repo`` from the local hub cache, else downloaded
    (online only; gated repos need an accepted licence and ``huggingface-cli login``).

    Raises
    ------
    InputError
        Offline (``HF_HUB_OFFLINE``) or unreachable hub without a cached file, or a failed download
        (no access to a gated repo, no such file).
    """
    files = tuple(files)
    cached = cached_hub_file(repo, files)
    if cached is None:
        if hub_offline():
            raise pretrained_unavailable(
                name, f"HF_HUB_OFFLINE is set and {repo} is not in the local hub cache", repo, files[0]
            )
        if not hub_reachable():
            raise pretrained_unavailable(
                name, f"the model hub is unreachable (no network) and {repo} is not cached", repo, files[0]
            )
        cached = _download(name, repo, files)
    return cached, WeightsInfo(source="hub", tag=repo, file=cached.name, sha256=sha256_file(cached))


def hub_config(name: str, repo: str) -> dict[str, Any]:
    """The timm ``config.json`` of hub repo ``repo`` (``architecture``, ``model_args``,
    ``pretrained_cfg``): from the local hub cache, else downloaded when online.

    Raises
    ------
    InputError
        Not cached while offline or without network, failed download, or not a timm config.
    """
    import json

    path = cached_hub_file(repo, ("config.json",))
    if path is None:
        if hub_offline() or not hub_reachable():
            raise InputError(
                f"--extractor {name}: the model config of {repo} is not in the local hub cache and the hub is not "
                f"reachable; where the network is reachable run `huggingface-cli download {repo} config.json` "
                "(kept in the hub cache, HF_HOME)"
            )
        path = _download(name, repo, ("config.json",))
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"--extractor {name}: {path} is not readable JSON ({exc}); download it again") from exc
    if not isinstance(config, dict) or not config.get("architecture"):
        raise InputError(
            f"--extractor {name}: {repo}'s config.json names no timm architecture; use timm:<arch> with --weights"
        )
    return config


def _download(name: str, repo: str, files: tuple[str, ...]) -> Path:
    from huggingface_hub import hf_hub_download

    errors = []
    for filename in files:
        try:
            return Path(hf_hub_download(repo, filename))
        except Exception as exc:  # noqa: BLE001 - hub errors come in many types
            errors.append(f"{filename}: {type(exc).__name__}: {' '.join(str(exc).split())[:120]}")
    reason = (
        f"downloading from {repo} failed ({'; '.join(errors)}); for a gated model accept its terms on the hub "
        "and run `huggingface-cli login`"
    )
    raise pretrained_unavailable(name, reason, repo, files[0])


def pretrained_unavailable(name: str, reason: str, repo: str = "", filename: str = "model.safetensors") -> InputError:
    """The error for ``--pretrained`` without a usable hub (points to ``--weights``)."""
    repo = repo or "<repo>"
    return InputError(
        f"--pretrained for {name}: {reason}; download the weights where the network is reachable "
        f"(e.g. `huggingface-cli download {repo} {filename}` on a login node) and pass --weights FILE"
    )
