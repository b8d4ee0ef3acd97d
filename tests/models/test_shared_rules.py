"""The rules the models and evaluate share: one grid step from coordinates, one masked mean."""

from __future__ import annotations

import numpy as np
import torch

from healnet_cli.models.blocks import grid_steps, masked_mean
from healnet_cli.models.ehpal_blocks import _grid
from healnet_cli.models.ehpal_ops import pooled
from healnet_cli.stages.evaluate.attention import _patch_size


def test_grid_step_is_the_smallest_gap_per_axis_and_both_entry_points_use_it() -> None:
    coords = torch.tensor([[[0, 0], [512, 0], [1024, 256], [9999, 9999]]], dtype=torch.float64)
    mask = torch.tensor([[True, True, True, False]])  # the padding token is ignored
    assert grid_steps(coords, mask).tolist() == [[[512.0, 256.0]]]
    assert _grid(coords, mask)[0, :3].tolist() == [[0, 0], [1, 0], [2, 1]]  # EHPAL's token grid
    assert _patch_size(coords[0, :3].numpy()) == 256.0  # evaluate's heatmap patch: the smaller step
    single = torch.tensor([[[5.0, 7.0]]], dtype=torch.float64)
    assert torch.isinf(grid_steps(single, torch.ones(1, 1, dtype=torch.bool))).all()
    assert _patch_size(np.array([[5.0, 7.0]])) == 256.0 and _grid(
        single, torch.ones(1, 1, dtype=torch.bool)
    ).tolist() == [[[0, 0]]]


def test_pooled_is_the_masked_mean_over_tokens() -> None:
    x = torch.randn(3, 2, 5)  # [c, b, n]
    mask = torch.tensor([[True, True, False, False, False], [True] * 5])
    expected = torch.stack([x[:, 0, :2].mean(dim=1), x[:, 1].mean(dim=1)])
    torch.testing.assert_close(pooled(x, mask), expected)
    torch.testing.assert_close(pooled(x, None), x.mean(dim=2).t())
    torch.testing.assert_close(masked_mean(x.permute(1, 2, 0), mask, dim=1), expected)
