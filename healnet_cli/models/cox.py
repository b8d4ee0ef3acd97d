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

__all__ = ["Coxnet", "CoxnetConfig", "LinearCox"]


@dataclass(frozen=True)
class CoxnetConfig:
    """Elastic-net Cox (scikit-survival ``CoxnetSurvivalAnalysis``) fit settings.

    Parameters
    ----------
    l1_ratio : float
        Elastic-net mixing (1 = lasso, 0.5 = the default).
    n_alphas : int
        Length of the regularisation path searched on the inner validation set.
    alpha_min_ratio : float
        Smallest alpha of the path as a fraction of the largest.
    max_iter : int
        Coordinate-descent iterations.
    alpha : float or None
        A fixed penalty (skips the path search); None = chosen on the inner validation set.
    """

    l1_ratio: float = 0.5
    n_alphas: int = 50
    alpha_min_ratio: float = 0.01
    max_iter: int = 10000
    alpha: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 < float(self.l1_ratio) <= 1.0:
            raise ValueError(f"l1_ratio must be in (0, 1], got {self.l1_ratio!r}")
        if int(self.n_alphas) < 1 or int(self.max_iter) < 1:
            raise ValueError("n_alphas and max_iter must be >= 1")
        if self.alpha is not None and float(self.alpha) <= 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha!r}")


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
