"""Survival models for WSI bags and omics vectors: tensors and masks in, hazard logits out."""

from healnet_cli.models._registry import create_model, get_model_class, list_models
from healnet_cli.models.base import SurvivalModel
from healnet_cli.models.batch import Batch, ModalityInput, ModalitySpec, ModelOutput
from healnet_cli.models.checkpoint import load_checkpoint, model_from_checkpoint, model_to_checkpoint, save_checkpoint

__all__ = [
    "Batch",
    "ModalityInput",
    "ModalitySpec",
    "ModelOutput",
    "SurvivalModel",
    "create_model",
    "get_model_class",
    "list_models",
    "load_checkpoint",
    "model_from_checkpoint",
    "model_to_checkpoint",
    "save_checkpoint",
]
