"""Patch feature extractors: a registry of name → model builder, eval transform, output, precision,
dimension and weights policy. Pure (no CLI, no slide I/O); ``healnet extract`` builds on it."""

from healnet_cli.extractors._registry import ExtractorSpec, list_specs, parse_encoder_args, spec_for
from healnet_cli.extractors.build import Extractor, autocast_dtype, check_weights_choice, load_extractor
from healnet_cli.extractors.presets import PRESETS
from healnet_cli.extractors.transform import EvalTransform, resize_patches
from healnet_cli.extractors.weights import WeightsInfo, read_state_dict

__all__ = [
    "PRESETS",
    "EvalTransform",
    "Extractor",
    "ExtractorSpec",
    "WeightsInfo",
    "autocast_dtype",
    "check_weights_choice",
    "list_specs",
    "load_extractor",
    "parse_encoder_args",
    "read_state_dict",
    "resize_patches",
    "spec_for",
]
