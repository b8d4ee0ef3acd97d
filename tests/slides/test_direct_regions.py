"""DirectRegions: read_region from directly decoded tiles gives OpenSlide's pixels exactly, falls back
to OpenSlide wherever it would not, caches tiles within a byte cap, and is fork-safe."""

from __future__ import annotations

import multiprocessing
import pickle
from pathlib import Path

import numpy as np
import pytest

from healnet_cli.slides import open_slide, tiff_pages
from healnet_cli.slides.direct_regions import DirectRegions, direct_regions
from healnet_cli.slides.openslide_backend import OpenSlideReader
from healnet_cli.slides.tiff_pages import TileCache
from healnet_cli.stages.demo.synthetic_slides import tissue_disk_tile_fn, write_pyramidal_tiff

# (x, y, w, h) in level-0 px: tile-aligned, unaligned (several tiles), a 16-patch strip, past the edge, outside
REGIONS = [(0, 0, 256, 256), (96, 160, 256, 256), (64, 64, 16 * 40, 40), (900, 600, 300, 200), (1600, 0, 8, 8)]


def _texture(width: int, height: int, seed: int = 3) -> np.ndarray:
    pixels = tissue_disk_tile_fn(width, height, seed=seed)(0, 0, width, height).astype(int)
    noise = np.random.default_rng(seed).integers(-25, 25, pixels.shape)
    return np.clip(pixels + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def pyramids(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Deflate pyramids 4x and 2x apart (the synthetic slides), and a JPEG (YCbCr) generic TIFF."""
    import tifffile

    root = tmp_path_factory.mktemp("direct")
    pixels = _texture(1024, 768)
    out = {
        "deflate-4x": write_pyramidal_tiff(root / "d4.tif", pixels, 0.5, levels=3, tile=128, level_factor=4),
        "deflate-2x": write_pyramidal_tiff(root / "d2.tif", pixels, 0.5, levels=3, tile=128, level_factor=2),
    }
    with tifffile.TiffWriter(root / "jpeg.tif") as writer:
        for index, level in enumerate([pixels, np.ascontiguousarray(pixels[::2, ::2])]):
            extra = {"resolution": (20000, 20000), "resolutionunit": "CENTIMETER"} if index == 0 else {"subfiletype": 1}
            writer.write(level, tile=(128, 128), compression="jpeg", photometric="ycbcr", **extra)
    out["jpeg"] = root / "jpeg.tif"
    return out


def _openslide_regions(reader, level: int) -> list[np.ndarray]:
    return [reader.read_region((x, y), level, (w, h)) for x, y, w, h in REGIONS]


@pytest.mark.parametrize("name", ["deflate-4x", "deflate-2x", "jpeg"])
def test_direct_regions_equal_openslide_on_every_level(pyramids: dict[str, Path], name: str) -> None:
    with open_slide(pyramids[name]) as plain, DirectRegions(open_slide(pyramids[name])) as direct:
        for level in range(plain.level_count):
            assert direct.direct_level(level) is not None, f"level {level} of {name} not read directly"
            for got, expected in zip([direct.read_region((x, y), level, (w, h)) for x, y, w, h in REGIONS],
                                     _openslide_regions(plain, level), strict=True):  # fmt: skip
                np.testing.assert_array_equal(got, expected)
        assert direct.cache.hits > 0  # the unaligned regions share tiles with the aligned ones


def test_locations_off_the_level_grid_and_fractional_downsamples_go_through_openslide(
    pyramids: dict[str, Path], tmp_path: Path
) -> None:
    calls: list[tuple] = []
    with DirectRegions(open_slide(pyramids["deflate-4x"])) as direct:
        inner = direct.reader.read_region
        direct.reader.read_region = lambda *args: calls.append(args) or inner(*args)  # type: ignore[method-assign]
        direct.read_region((8, 4), 1, (32, 32))  # divisible by 4: level pixel (2, 1), direct
        assert calls == []
        with open_slide(pyramids["deflate-4x"]) as plain:  # 6 is between level-1 pixels: OpenSlide resamples
            np.testing.assert_array_equal(
                direct.read_region((6, 4), 1, (32, 32)), plain.read_region((6, 4), 1, (32, 32))
            )
        assert calls == [((6, 4), 1, (32, 32))]
    odd = write_pyramidal_tiff(tmp_path / "odd.tif", _texture(1001, 701), 0.5, levels=2, tile=128, level_factor=2)
    with DirectRegions(open_slide(odd)) as direct:
        assert direct.level_downsamples[1] != 2.0 and direct.direct_level(1) is None  # 1001 / 501: not whole
        assert direct.direct_level(0) is not None


def test_jpeg_level_whose_probe_tile_differs_stays_with_openslide(pyramids: dict[str, Path]) -> None:
    """Another libjpeg build (simulated: OpenSlide's pixels off by one) keeps JPEG levels on OpenSlide."""

    class OtherDecoder(OpenSlideReader):
        def read_region(self, location, level, size):
            return super().read_region(location, level, size) ^ np.uint8(1)

    with DirectRegions(OtherDecoder(pyramids["jpeg"])) as direct:
        assert direct.direct_level(0) is None
        with open_slide(pyramids["jpeg"]) as plain:
            np.testing.assert_array_equal(
                direct.read_region((96, 160), 0, (64, 64)), plain.read_region((96, 160), 0, (64, 64)) ^ 1
            )
    with DirectRegions(OtherDecoder(pyramids["deflate-4x"])) as direct:
        assert direct.direct_level(0) is not None  # lossless: no probe, decoding is exact


def test_missing_codec_leaves_the_level_to_openslide(
    pyramids: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """tifffile needs imagecodecs for JPEG (and LZW); without it those levels are read by OpenSlide."""
    monkeypatch.setattr(tiff_pages, "codec_available", lambda compression: compression != 7)
    with DirectRegions(open_slide(pyramids["jpeg"])) as direct, open_slide(pyramids["jpeg"]) as plain:
        assert direct.direct_level(0) is None
        np.testing.assert_array_equal(
            direct.read_region((0, 0), 0, (300, 200)), plain.read_region((0, 0), 0, (300, 200))
        )
        assert tiff_pages.open_direct_level(plain, 0) is None  # and whole-slide reads (healnet tile) too
    assert tiff_pages.codec_available(8)  # deflate: always (zlib)


def test_tile_cache_keeps_recent_tiles_within_its_byte_cap() -> None:
    cache = TileCache(3 * 1000)
    tiles = {k: np.full((10, 100), k, np.uint8) for k in range(5)}  # 1000 bytes each
    for key in (0, 1, 2):
        cache.put(key, tiles[key])
    assert cache.get(0) is not None  # 0 is now the most recent
    cache.put(3, tiles[3])  # over the cap: the least recently used (1) goes
    assert cache.get(1) is None and cache.get(2) is not None and len(cache) == 3 and cache.nbytes == 3000
    cache.put(4, np.zeros((40, 100), np.uint8))  # larger than the cap: not kept, nothing evicted
    assert cache.get(4) is None and len(cache) == 3
    with pytest.raises(ValueError):
        cache.get(0)[0, 0] = 9  # cached tiles are read-only
    assert pickle.loads(pickle.dumps(cache)).max_bytes == 3000 and len(pickle.loads(pickle.dumps(cache))) == 0


def test_reads_are_the_same_with_a_tiny_cache_or_none(pyramids: dict[str, Path]) -> None:
    with (
        DirectRegions(open_slide(pyramids["jpeg"])) as ample,
        DirectRegions(open_slide(pyramids["jpeg"]), cache_bytes=100_000) as tiny,
    ):
        assert tiny.direct_level(0) is not None
        for _ in range(2):
            for x, y, w, h in REGIONS:
                np.testing.assert_array_equal(tiny.read_region((x, y), 0, (w, h)), ample.read_region((x, y), 0, (w, h)))
        assert tiny.cache.nbytes <= 100_000 < ample.cache.nbytes


def test_direct_regions_survive_pickle_and_fork(pyramids: dict[str, Path]) -> None:
    with open_slide(pyramids["deflate-4x"]) as plain:
        expected = plain.read_region((100, 50), 0, (300, 70))
    direct = DirectRegions(open_slide(pyramids["deflate-4x"]))
    direct.read_region((0, 0), 0, (256, 256))  # levels and cache opened in this process
    clone = pickle.loads(pickle.dumps(direct))
    assert clone._handle is None and len(clone.cache) == 0
    np.testing.assert_array_equal(clone.read_region((100, 50), 0, (300, 70)), expected)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        child = pool.apply(_child_read, (direct,))
    np.testing.assert_array_equal(child, expected)
    np.testing.assert_array_equal(direct.read_region((100, 50), 0, (300, 70)), expected)  # parent's handles intact
    direct.close()
    clone.close()


def _child_read(direct: DirectRegions) -> np.ndarray:
    return direct.read_region((100, 50), 0, (300, 70))


def test_only_generic_tiff_and_aperio_slides_are_wrapped(pyramids: dict[str, Path], tmp_path: Path) -> None:
    from PIL import Image

    with open_slide(pyramids["deflate-2x"]) as reader:
        assert isinstance(direct_regions(reader), DirectRegions)
    Image.fromarray(_texture(64, 48)).save(tmp_path / "plain.png")
    with open_slide(tmp_path / "plain.png") as image:
        assert direct_regions(image) is image


@pytest.mark.real_data
def test_real_aperio_patches_equal_openslide(shared_data: Path) -> None:
    """Patches of the real Aperio slide (JPEG, 240 px tiles: 256 px patches span up to 4 tiles).

    Both decoders are libjpeg-turbo builds here (openslide-bin and imagecodecs) and agree exactly; with a
    build whose output differs, the probe keeps the level on OpenSlide, so the pixels stay OpenSlide's.
    """
    slide = shared_data / "slides" / "CMU-1-Small-Region.svs"
    if not slide.is_file():
        pytest.skip(f"{slide} not found")
    with open_slide(slide) as plain, DirectRegions(open_slide(slide)) as direct:
        assert direct.properties["openslide.vendor"] == "aperio" and direct.direct_level(0) is not None
        for x, y in [(0, 0), (256, 256), (1000, 1500), (1964, 2711), (512, 768)]:
            np.testing.assert_array_equal(
                direct.read_region((x, y), 0, (256, 256)), plain.read_region((x, y), 0, (256, 256))
            )
        strip = direct.read_region((0, 1024), 0, (8 * 256, 256))
        np.testing.assert_array_equal(strip, plain.read_region((0, 1024), 0, (8 * 256, 256)))
