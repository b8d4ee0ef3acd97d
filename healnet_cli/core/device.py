"""Device and precision selection for the stages that run models (``--device``, ``--precision``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from healnet_cli.core.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch

DEVICE_CHOICES = "auto, cpu, cuda, cuda:<index>"
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` → the first CUDA device when available, else the CPU; ``cuda[:i]`` must exist.

    Raises
    ------
    InputError
        Unknown spec, or a CUDA device that is not available.
    """
    import torch

    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError(f"--device {spec}: CUDA is not available on this machine; use --device cpu or auto")
        index = 0 if spec == "cuda" else _index(spec)
        if index >= torch.cuda.device_count():
            raise InputError(
                f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) visible; pick an index below that"
            )
        return torch.device("cuda", index)
    raise InputError(f"--device {spec!r} is not one of {DEVICE_CHOICES}")


def _index(spec: str) -> int:
    try:
        return int(spec.split(":", 1)[1])
    except ValueError as exc:
        raise InputError(f"--device {spec!r}: the index after 'cuda:' must be an integer") from exc


def resolve_precision(spec: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``spec`` on ``device``; None means plain fp32.

    ``auto`` gives bf16 on CUDA devices that support it, else fp16 on CUDA, and fp32 on the CPU.
    """
    import torch

    spec = (spec or "auto").strip().lower()
    if spec not in PRECISION_CHOICES:
        raise InputError(f"--precision {spec!r} is not one of {', '.join(PRECISION_CHOICES)}")
    if spec == "fp32":
        return None
    if device.type != "cuda":
        if spec == "auto":
            return None
        if spec == "fp16":
            raise InputError("--precision fp16 needs a CUDA device; use fp32 or bf16 on the CPU")
        return torch.bfloat16
    if spec == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if spec == "bf16" else torch.float16
