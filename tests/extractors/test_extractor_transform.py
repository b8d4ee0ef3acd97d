"""The eval transform: resize in uint8, normalise on the device."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from healnet_cli.extractors.transform import EvalTransform, resize_patches, timm_transform


def test_resize_identity_and_shape() -> None:
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert resize_patches(x, 32, "bilinear") is x
    out = resize_patches(x, 48, "bicubic")
    assert out.shape == (2, 3, 48, 48) and out.dtype == torch.uint8
    assert resize_patches(x[:0], 48, "bilinear").shape == (0, 3, 48, 48)


def test_resize_is_the_documented_interpolation() -> None:
    x = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    expected = F.interpolate(x, size=(40, 40), mode="bilinear", align_corners=False, antialias=True)
    ours = resize_patches(x, 40, "bilinear")
    assert torch.equal(ours, expected) and ours.is_contiguous(memory_format=torch.channels_last)
    as_float = F.interpolate(x.float(), size=(40, 40), mode="bilinear", align_corners=False, antialias=True)
    assert (ours.float() - as_float).abs().max() <= 1.0  # integer kernel: within one grey level
    area = resize_patches(x, 32, "area")
    assert area.dtype == torch.uint8 and area.shape == (1, 3, 32, 32)


def test_normalize() -> None:
    t = EvalTransform(input_px=2, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    assert torch.allclose(t.normalize(x), torch.full((1, 3, 2, 2), 2.0))
    assert t.as_dict()["mean"] == [0.5, 0.5, 0.5]


def test_timm_transform_rejects_non_square() -> None:
    with pytest.raises(ValueError, match="non-square"):
        timm_transform({"input_size": (3, 224, 256), "mean": (0, 0, 0), "std": (1, 1, 1)})
