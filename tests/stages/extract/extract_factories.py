"""Factories for extract tests (imported by conftest.py and the tests): tiny pyramidal slides with committed tile
coordinates, and random-init weight files of a tiny timm model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from healnet_cli.artifacts.coords import SlideCoords, coords_path, write_coords
from healnet_cli.core.fingerprint import file_fingerprint
from healnet_cli.core.store import ArtifactStore
from healnet_cli.stages.demo.synthetic_slides import write_pyramidal_tiff

TINY_MODEL = "timm:test_resnet"  # 96-d, 160 px input, ~0.4 M parameters
PATCH_PX = 64  # read at level 0, resized to the model input by the loader


def slide_pixels(seed: int, size_px: int = 256) -> np.ndarray:
    """A textured RGB image (smooth colour blobs + noise), deterministic per seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size_px, 0:size_px] / size_px
    base = np.stack([np.sin(6 * xx + seed), np.cos(5 * yy - seed), np.sin(4 * (xx + yy))], axis=-1)
    image = 150 + 60 * base + rng.normal(0, 20, (size_px, size_px, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def add_slide(
    workdir: Path, slide_id: str, *, seed: int = 0, n_patches: int = 6, size_px: int = 256, corrupt: bool = False
) -> Path:
    """Write ``slides/<id>.tif`` and its committed ``tiles/<id>.parquet`` (patches on a 64 px grid)."""
    slide = workdir / "slides" / f"{slide_id}.tif"
    slide.parent.mkdir(parents=True, exist_ok=True)
    if corrupt:
        slide.write_bytes(b"II*\x00" + b"\x00garbage" * 64)
    else:
        write_pyramidal_tiff(slide, slide_pixels(seed, size_px), mpp=0.5, levels=2, tile=128)
    grid = [
        (x, y) for y in range(0, size_px - PATCH_PX + 1, PATCH_PX) for x in range(0, size_px - PATCH_PX + 1, PATCH_PX)
    ]
    xy = np.array(grid[:n_patches], dtype=np.int64).reshape(-1, 2)
    meta = {
        "slide_id": slide_id,
        "case_id": f"case-{slide_id}",
        "source_path": str(slide),
        "reader": "openslide",
        "mpp": 0.5,
        "mpp_source": "tiff",
        "target_mpp": 0.5,
        "patch_px": PATCH_PX,
        "patch_px_level0": PATCH_PX,
        "read_level": 0,
        "read_downsample": 1.0,
        "read_patch_px": PATCH_PX,
    }
    tiles = workdir / "tiles"
    path = write_coords(
        coords_path(tiles, slide_id), SlideCoords(xy[:, 0], xy[:, 1], np.ones(len(xy), np.float32), meta)
    )
    store = ArtifactStore(tiles, "tile", {"target_mpp": 0.5, "patch_px": PATCH_PX})
    fingerprint = file_fingerprint(slide)
    store.commit(slide_id, fingerprint, [path], meta={"slide_fingerprint": fingerprint})  # as healnet tile records it
    return slide


def save_random_weights(path: Path, name: str = "test_resnet", seed: int = 0) -> Path:
    """Random-init weights of a timm model written to ``path`` (.safetensors or .pt)."""
    import timm

    torch.manual_seed(seed)
    model = timm.create_model(name, num_classes=0)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path
