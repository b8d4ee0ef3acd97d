"""Linear Cox models fitted outside the training loop (``coxnet``), as registered survival models.

A :class:`LinearCox` holds a fitted coefficient vector over the concatenation of its vector
(omics) modalities, in the order of its modality specs, and the values that stand in for an absent
modality (the fold's training medians). Its output is the Cox log-risk ``x @ coef``, repeated over
the ``n_bins`` logits so that it fits the model contract; the survival curve comes from a Breslow
baseline that the fold stores beside the model (as for networks trained with ``--loss cox``).

The coefficients are not learned by gradient descent: a fitter (``healnet_cli.data.fitted``)
estimates them and :meth:`LinearCox.load_fit` puts them in. The product is computed in float64
with autocast disabled, so a bf16 run on a GPU does not round the risks.

A second Cox-type model is one subclass with its own ``name`` and ``config_cls``, registered in
``models/_registry.py``, plus a fitter entry in ``healnet_cli/data/fitted.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from healnet_cli.models.base import SurvivalModel
from healnet_cli.models.batch import ModalitySpec, ModelOutput, ResolvedModality

__all__ = ["CoxClinical", "CoxClinicalConfig", "Coxnet", "CoxnetConfig", "LinearCox"]

SELECT_RULES = ("cv-min", "cv-1se", "mid-path")


@dataclass(frozen=True)
class CoxnetConfig:
    """Elastic-net Cox (scikit-survival ``CoxnetSurvivalAnalysis``) fit settings.

    Parameters
    ----------
    l1_ratio : float
        Elastic-net mixing (1 = lasso; default 0.1, mostly ridge: chosen on the inner cross-validated
        c-index of the three TCGA cohorts, see docs/train.md).
    n_alphas : int
        Length of the regularisation path (the alpha grid the inner cross-validation scores).
    alpha_min_ratio : float
        Smallest alpha of the path as a fraction of the largest.
    max_iter : int
        Coordinate-descent iterations.
    select : str
        How alpha is chosen on the fold's training patients: ``cv-min`` (the best inner
        cross-validated score, glmnet's ``lambda.min``; the default), ``cv-1se`` (the largest alpha
        within one SE of it, ``lambda.1se``) or ``mid-path`` (the middle of the path, no validation;
        a reference point).
    criterion : str
        The inner cross-validation score: ``deviance`` (cv.glmnet's grouped partial-likelihood
        deviance; the default) or ``cindex`` (Harrell's c of each inner fold's held-out patients).
    inner_folds : int
        Inner cross-validation folds (stratified by event; seeded by ``--seed`` and the fold).
    alpha : float or None
        A fixed penalty (skips the selection); None = chosen by ``select``.
    """

    l1_ratio: float = 0.1
    n_alphas: int = 50
    alpha_min_ratio: float = 0.01
    max_iter: int = 10000
    select: str = "cv-min"
    criterion: str = "deviance"
    inner_folds: int = 5
    alpha: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 < float(self.l1_ratio) <= 1.0:
            raise ValueError(f"l1_ratio must be in (0, 1], got {self.l1_ratio!r}")
        if int(self.n_alphas) < 1 or int(self.max_iter) < 1:
            raise ValueError("n_alphas and max_iter must be >= 1")
        if self.alpha is not None and float(self.alpha) <= 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha!r}")
        if self.select not in SELECT_RULES:
            raise ValueError(f"select must be one of {list(SELECT_RULES)}, got {self.select!r}")
        if self.criterion not in ("cindex", "deviance"):
            raise ValueError(f"criterion must be 'cindex' or 'deviance', got {self.criterion!r}")
        if int(self.inner_folds) < 2:
            raise ValueError(f"inner_folds must be >= 2, got {self.inner_folds!r}")


class LinearCox(SurvivalModel):
    """Cox log-risk ``x @ coef`` over the concatenated vector modalities; absent ones imputed.

    Parameters
    ----------
    modalities : dict of str to ModalitySpec
        Vector modalities only (a bag raises ``ValueError``).
    n_bins : int
        Width of the output (the log-risk is repeated; survival uses the Breslow baseline).
    config
        The fit settings (recorded, not used by ``forward``).
    """

    name: ClassVar[str] = ""
    #: Modality kinds the model accepts (checked by ``healnet train`` before reading any data).
    modality_kinds: ClassVar[tuple[str, ...]] = ("vector",)
    #: The exact modalities the model takes (None: any vector modalities).
    required_modalities: ClassVar[tuple[str, ...] | None] = None
    impute: torch.Tensor  # buffers
    fitted_alpha: torch.Tensor

    def __init__(self, modalities: dict[str, ModalitySpec], n_bins: int, config: object) -> None:
        super().__init__(modalities, n_bins, config)
        bags = [m for m, s in self.modalities.items() if s.kind != "vector"]
        if bags:
            raise ValueError(
                f"{self.name} works on omics only (vector modalities); got bag modality {bags[0]!r}: "
                f"drop it from --modalities or pick another model"
            )
        if self.required_modalities is not None and tuple(self.modalities) != self.required_modalities:
            raise ValueError(
                f"{self.name} takes the modalities {','.join(self.required_modalities)} only, "
                f"got {','.join(self.modalities)}"
            )
        width = sum(int(s.dim) for s in self.modalities.values())
        self.coef = nn.Parameter(torch.zeros(width, dtype=torch.float64))
        self.register_buffer("impute", torch.zeros(width, dtype=torch.float64))
        self.register_buffer("fitted_alpha", torch.zeros((), dtype=torch.float64))

    def load_fit(self, coef: np.ndarray, impute: np.ndarray, alpha: float) -> LinearCox:
        """Put fitted coefficients, the absent-modality values and the chosen penalty in."""
        width = self.coef.shape[0]
        coef, impute = np.asarray(coef, np.float64).reshape(-1), np.asarray(impute, np.float64).reshape(-1)
        if coef.shape[0] != width or impute.shape[0] != width:
            raise ValueError(
                f"{self.name}: expected {width} coefficients and impute values, got {coef.shape[0]} / {impute.shape[0]}"
            )
        with torch.no_grad():
            self.coef.copy_(torch.from_numpy(coef))
            self.impute.copy_(torch.from_numpy(impute))
            self.fitted_alpha.fill_(float(alpha))
        return self

    def _forward(
        self, inputs: dict[str, ResolvedModality | None], batch_size: int, device: torch.device, return_weights: bool
    ) -> ModelOutput:
        with torch.autocast(device_type=device.type, enabled=False):
            parts, start = [], 0
            for name, spec in self.modalities.items():
                fill = self.impute[start : start + spec.dim].unsqueeze(0).expand(batch_size, -1)
                item = inputs.get(name)
                if item is None:
                    parts.append(fill)
                else:
                    present = item.present.reshape(-1, 1)
                    parts.append(torch.where(present, item.data.to(torch.float64), fill))
                start += spec.dim
            risk = torch.cat(parts, dim=1) @ self.coef
        logits = risk.to(torch.float32).unsqueeze(1).expand(batch_size, self.n_bins).contiguous()
        return ModelOutput(logits=logits, weights={} if return_weights else None)


class Coxnet(LinearCox):
    """Elastic-net Cox on fold-preprocessed omics (fitted by ``healnet_cli.data.coxnet.fit_coxnet``)."""

    name: ClassVar[str] = "coxnet"
    config_cls: ClassVar[type] = CoxnetConfig


@dataclass(frozen=True)
class CoxClinicalConfig:
    """Cox proportional-hazards model on the clinical covariates (Newton-Raphson, Breslow ties).

    Parameters
    ----------
    ridge : float
        L2 penalty ``ridge / 2 * ||beta||^2`` on the partial log-likelihood of the fold-standardised
        covariates (light: it keeps rare stage/grade levels and collinear indicators finite; 0 =
        unpenalised).
    max_iter : int
        Newton-Raphson iterations.
    """

    ridge: float = 1.0
    max_iter: int = 50

    def __post_init__(self) -> None:
        if not float(self.ridge) >= 0.0:
            raise ValueError(f"ridge must be >= 0, got {self.ridge!r}")
        if int(self.max_iter) < 1:
            raise ValueError("max_iter must be >= 1")


class CoxClinical(LinearCox):
    """Cox model on the ``clinical`` modality alone (fitted by ``healnet_cli.data.fitted``); a patient
    without clinical data gets the fold's training medians, i.e. the risk of a median patient."""

    name: ClassVar[str] = "cox-clinical"
    config_cls: ClassVar[type] = CoxClinicalConfig
    required_modalities: ClassVar[tuple[str, ...] | None] = ("clinical",)
