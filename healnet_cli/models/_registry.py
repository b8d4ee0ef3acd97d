"""Model registry: names -> model classes, and the factory that builds them."""

from __future__ import annotations

from typing import Any

from healnet_cli.models.base import SurvivalModel, build_config
from healnet_cli.models.batch import ModalitySpec

__all__ = ["create_model", "get_model_class", "list_models"]


def _classes() -> dict[str, type[SurvivalModel]]:
    from healnet_cli.models.baselines import ABMIL, SNN, ConcatFusion, LateFusion
    from healnet_cli.models.cox import CoxClinical, Coxnet
    from healnet_cli.models.ehpal import EHPAL
    from healnet_cli.models.healnet import HEALNet

    # Networks trained by gradient descent, then models fitted in closed form (their fitters are
    # listed in healnet_cli/data/fitted.py).
    return {cls.name: cls for cls in (HEALNet, EHPAL, ABMIL, SNN, ConcatFusion, LateFusion, Coxnet, CoxClinical)}


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`, in registry order.

    Examples
    --------
    >>> list_models()
    ['healnet', 'ehpal', 'abmil', 'snn', 'concat', 'late', 'coxnet', 'cox-clinical']
    """
    return list(_classes())


def get_model_class(name: str) -> type[SurvivalModel]:
    """Model class registered under ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not registered; the message lists the valid names.
    """
    classes = _classes()
    if name not in classes:
        raise ValueError(f"unknown model {name!r}; valid models: {list(classes)}")
    return classes[name]


def create_model(name: str, modalities: dict[str, ModalitySpec], n_bins: int, **hparams: Any) -> SurvivalModel:
    """Build a registered survival model.

    Parameters
    ----------
    name : str
        One of :func:`list_models`.
    modalities : dict of str to ModalitySpec
        The fixed set of modalities, in fusion order unless the model's config says otherwise.
    n_bins : int
        Number of discrete-time hazard bins (output logits).
    **hparams
        Fields of the model's config dataclass (e.g. ``HEALNetConfig``).

    Returns
    -------
    SurvivalModel

    Raises
    ------
    ValueError
        Unknown model name, unknown hyperparameter (the valid keys are listed) or invalid value.
    """
    cls = get_model_class(name)
    specs = {k: v if isinstance(v, ModalitySpec) else ModalitySpec(**v) for k, v in modalities.items()}
    for key in specs:
        if not key or "." in key or "/" in key:
            raise ValueError(f"modality names must be non-empty and contain no '.' or '/', got {key!r}")
    return cls(specs, n_bins, build_config(cls.config_cls, hparams))
