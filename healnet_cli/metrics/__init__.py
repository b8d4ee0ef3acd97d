"""Survival metric kernels (pure, no I/O) with named results; scikit-survival underneath.

Sign convention everywhere: a higher risk score means an earlier expected event.
"""

from healnet_cli.metrics.bootstrap import (
    BootstrapResult,
    PairedBootstrap,
    bootstrap_ci,
    bootstrap_ci_batched,
    paired_bootstrap,
    resample_counts,
    too_few_for_ci,
)
from healnet_cli.metrics.censoring import CensoringModel, fit_censoring
from healnet_cli.metrics.concordance import (
    compute_harrell,
    compute_uno,
    compute_weighted_concordance,
    concordance_counts,
)
from healnet_cli.metrics.km import calibration, kaplan_meier, km_at, logrank, numbers_at_risk, risk_groups
from healnet_cli.metrics.result import MetricValue, NotComputable, compute_safely
from healnet_cli.metrics.timedep import (
    censoring_at,
    clip_grid,
    compute_brier,
    compute_ibs,
    compute_td_auc,
    default_grid,
    ibs_counts,
    survival_at,
    survival_interpolated,
    td_auc_counts,
)

__all__ = [
    "BootstrapResult",
    "CensoringModel",
    "MetricValue",
    "NotComputable",
    "PairedBootstrap",
    "bootstrap_ci",
    "bootstrap_ci_batched",
    "calibration",
    "censoring_at",
    "clip_grid",
    "compute_brier",
    "compute_harrell",
    "compute_ibs",
    "compute_safely",
    "compute_td_auc",
    "compute_uno",
    "compute_weighted_concordance",
    "concordance_counts",
    "default_grid",
    "fit_censoring",
    "ibs_counts",
    "kaplan_meier",
    "km_at",
    "logrank",
    "numbers_at_risk",
    "paired_bootstrap",
    "resample_counts",
    "risk_groups",
    "survival_at",
    "survival_interpolated",
    "td_auc_counts",
    "too_few_for_ci",
]
