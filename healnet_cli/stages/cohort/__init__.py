"""``healnet cohort``: the availability matrix of patients × modalities, labels and mismatches."""

from healnet_cli.stages.cohort.matrix import CohortMatrix, compute_cohort
from healnet_cli.stages.cohort.render import render_plain, render_rich

__all__ = ["CohortMatrix", "compute_cohort", "render_plain", "render_rich"]
