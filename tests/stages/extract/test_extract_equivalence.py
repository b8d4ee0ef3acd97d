"""A patch's stored features equal a direct timm forward of the same region read independently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide
import timm
import torch
import torch.nn.functional as F
from extract_factories import PATCH_PX
from safetensors.torch import load_file
from typer.testing import CliRunner

from healnet_cli.artifacts.features import features_path, read_features
from healnet_cli.cli import build_app

runner = CliRunner()


def _reference_features(slide: Path, xy: np.ndarray, weights: Path) -> torch.Tensor:
    model = timm.create_model("test_resnet", num_classes=0).eval()
    model.load_state_dict(load_file(str(weights)))
    config = timm.data.resolve_model_data_config(model)
    size = config["input_size"][1]
    mean = torch.tensor(config["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(config["std"]).view(1, 3, 1, 1)
    with openslide.OpenSlide(str(slide)) as handle:
        regions = [
            np.asarray(handle.read_region((int(x), int(y)), 0, (PATCH_PX, PATCH_PX)).convert("RGB")) for x, y in xy
        ]
    batch = torch.from_numpy(np.stack(regions)).permute(0, 3, 1, 2)
    batch = F.interpolate(batch, size=(size, size), mode=config["interpolation"], align_corners=False, antialias=True)
    batch = batch.float() / 255.0  # the documented transform: uint8 antialiased resize, then /255, mean/std
    with torch.inference_mode():
        return model((batch - mean) / std)


def test_features_equal_direct_timm_forward(workspace: Path, weights_file: Path) -> None:
    result = runner.invoke(
        build_app(),
        [
            "extract",
            "-w",
            str(workspace),
            "-e",
            "timm:test_resnet",
            "--weights",
            str(weights_file),
            "--dtype",
            "float32",
            "--batch-size",
            "4",
            "--num-workers",
            "2",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    for slide_id in ("s1", "s2"):
        bag = read_features(features_path(workspace / "features" / "timm-test_resnet", slide_id))
        expected = _reference_features(workspace / "slides" / f"{slide_id}.tif", bag.coords.numpy(), weights_file)
        assert bag.features.dtype == torch.float32 and bag.features.shape == expected.shape
        assert (bag.features - expected).abs().max().item() < 1e-4
