"""``healnet cohort``: the availability matrix of patients × modalities, labels and mismatches."""

from healnet_cli.stages.cohort.matrix import Cohort, compute_cohort
from healnet_cli.stages.cohort.render import render_plain, render_rich

__all__ = ["Cohort", "compute_cohort", "render_plain", "render_rich"]
