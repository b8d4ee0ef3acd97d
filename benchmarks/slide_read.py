"""Per-patch cost of reading a slide through OpenSlide, and of its RGBA -> RGB step.

Writes a synthetic pyramidal TIFF, reads ``--patches`` random 256 x 256 regions at level 0 with the
OpenSlide reader and prints::

    read_region_ms_per_patch=   OpenSlideReader.read_region (OpenSlide decode + RGBA -> RGB)
    rgba_to_rgb_ms_per_patch=   healnet's conversion alone (PIL C code)
    numpy_rgba_ms_per_patch=    the same conversion done with numpy (the earlier implementation)
    rgba_speedup=               numpy / PIL, measured back to back in this run

Usage: ``python benchmarks/slide_read.py [--patches 2000] [--size 8192]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def numpy_rgba_to_rgb(rgba: np.ndarray) -> np.ndarray:
    """The earlier numpy implementation, kept here as the baseline."""
    rgb, alpha = rgba[..., :3], rgba[..., 3]
    if alpha.min(initial=255) == 255:
        return np.ascontiguousarray(rgb)
    a = alpha[..., None].astype(np.uint16)
    return ((rgb.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def per_call_ms(fn, items) -> float:
    start = time.perf_counter()
    for item in items:
        fn(item)
    return 1000 * (time.perf_counter() - start) / len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, default=2000)
    parser.add_argument("--size", type=int, default=8192)
    args = parser.parse_args()

    from healnet_cli.slides.base import rgba_to_rgb
    from healnet_cli.slides.openslide_backend import OpenSlideReader
    from healnet_cli.stages.demo.synthetic_slides import tissue_disk_tile_fn, write_pyramidal_tiff

    with tempfile.TemporaryDirectory(prefix="healnet-read-") as tmp:
        path = Path(tmp) / "slide.tif"
        write_pyramidal_tiff(path, tissue_disk_tile_fn(args.size, args.size, seed=0), 0.5, size=(args.size, args.size))
        reader = OpenSlideReader(path)
        rng = np.random.default_rng(0)
        xy = rng.integers(0, args.size - 256, size=(args.patches, 2))
        read = per_call_ms(lambda p: reader.read_region((int(p[0]), int(p[1])), 0, (256, 256)), xy)
        handle = reader._open()
        images = [handle.read_region((int(x), int(y)), 0, (256, 256)) for x, y in xy[:500]]
        arrays = [np.asarray(im) for im in images]
        pil_ms = per_call_ms(rgba_to_rgb, images)
        numpy_ms = per_call_ms(lambda im: numpy_rgba_to_rgb(np.asarray(im)), images)
        assert all(
            np.array_equal(rgba_to_rgb(im), numpy_rgba_to_rgb(a))
            for im, a in zip(images[:50], arrays[:50], strict=True)
        )
    print(f"read_region_ms_per_patch={read:.3f}")
    print(f"rgba_to_rgb_ms_per_patch={pil_ms:.3f}")
    print(f"numpy_rgba_ms_per_patch={numpy_ms:.3f}")
    print(f"rgba_speedup={numpy_ms / pil_ms:.2f}")


if __name__ == "__main__":
    main()
