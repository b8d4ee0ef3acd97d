"""``healnet extract`` options as one validated, frozen config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from healnet_cli.core.errors import InputError
from healnet_cli.core.hpc import available_cpus
from healnet_cli.core.runner import check_on_error
from healnet_cli.core.workspace import check_features_name

DTYPES = ("float16", "float32")
EXPORTS = ("none", "clam")


@dataclass(frozen=True)
class ExtractConfig:
    """Everything that decides what ``healnet extract`` does.

    ``num_workers=None`` means :func:`default_num_workers`.
    """

    workdir: Path
    extractor: str
    encoder_args: tuple[str, ...] = ()
    name: str | None = None
    weights: Path | None = None
    pretrained: bool = False
    random_init: bool = False
    batch_size: int = 64
    num_workers: int | None = None
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    dtype: str = "float16"
    export: str = "none"
    force: bool = False
    shard: str | None = None
    on_error: str = "continue"

    def validate(self) -> ExtractConfig:
        """Raise InputError on an invalid value (before any work); return self."""
        if self.batch_size < 1:
            raise InputError(f"--batch-size {self.batch_size}: must be >= 1 (e.g. 64 on a CPU, 256 on a GPU)")
        if self.num_workers is not None and self.num_workers < 0:
            raise InputError(f"--num-workers {self.num_workers}: must be >= 0 (0 reads patches in the main process)")
        if self.dtype not in DTYPES:
            raise InputError(f"--dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.export not in EXPORTS:
            raise InputError(f"--export {self.export!r} is not one of {', '.join(EXPORTS)}")
        check_on_error(self.on_error)
        check_features_name(self.name)
        return self


def default_num_workers(*, model_on_cpu: bool, workers_compute: bool) -> int:
    """DataLoader workers from the CPUs this job may use (``sched_getaffinity``).

    - features computed in the workers (``stain-texture``): one worker per CPU;
    - a model on the CPU: the model needs the cores, reading is a small share of the work, so one
      worker per 4 CPUs (at least 1);
    - a model on a GPU: every CPU but one reads (at most 16).
    """
    cpus = available_cpus()
    if workers_compute:
        return cpus
    if model_on_cpu:
        return max(1, cpus // 4)
    return max(1, min(16, cpus - 1))
