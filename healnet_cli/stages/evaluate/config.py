"""Options of ``healnet evaluate``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from healnet_cli.core.errors import InputError


@dataclass(frozen=True)
class EvaluateConfig:
    """Resolved, validated options (one field per CLI flag).

    Attributes
    ----------
    bootstrap
        Bootstrap resamples for 95% percentile CIs and the paired test (0 = none).
    groups
        Risk groups for the KM plot (2 = median split, 3 = tertiles, ...).
    times
        Evaluation times (time units of the labels); empty = defaults (see docs/evaluate.md).
    ablate
        Re-predict test patients with modalities removed (needs checkpoints and the workdir).
    attention
        Top omics features and WSI heatmaps from the models' weights (needs the same).
    top_k_genes
        Features listed per omics modality.
    workdir
        Workspace holding tiles/, features/, omics/ (default: the one recorded in the run).
    out
        Output folder: a single run's evaluation, or the comparison of several runs.
    """

    bootstrap: int = 1000
    groups: int = 2
    times: tuple[float, ...] = ()
    ablate: bool = False
    attention: bool = True
    top_k_genes: int = 20
    seed: int = 0
    workdir: Path | None = None
    out: Path | None = None
    device: str = "cpu"
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.bootstrap < 0:
            raise InputError(f"--bootstrap {self.bootstrap}: must be >= 0 (0 disables the intervals)")
        if not 2 <= self.groups <= 6:
            raise InputError(f"--groups {self.groups}: must be between 2 and 6")
        if self.top_k_genes < 1:
            raise InputError(f"--top-k-genes {self.top_k_genes}: must be >= 1")
        if any(t <= 0 for t in self.times):
            raise InputError(f"--times {','.join(map(str, self.times))}: times must be > 0")
        if self.batch_size < 1:
            raise InputError(f"--batch-size {self.batch_size}: must be >= 1")


def parse_times(text: str | None) -> tuple[float, ...]:
    """``"365,730,1095"`` → ``(365.0, 730.0, 1095.0)``."""
    if not text:
        return ()
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError as exc:
        raise InputError(f"--times {text!r}: expected comma-separated numbers, e.g. 365,730,1095") from exc
