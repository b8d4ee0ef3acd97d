"""The cross-slide loader: chunking, worker split, per-slide errors, loader crashes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from extract_factories import add_slide, slide_pixels

from healnet_cli.artifacts.coords import SlideCoords, coords_path, write_coords
from healnet_cli.artifacts.features import features_path, read_features
from healnet_cli.core.console import Console
from healnet_cli.core.fingerprint import file_fingerprint
from healnet_cli.core.runner import WorkItem
from healnet_cli.core.store import ArtifactStore
from healnet_cli.extractors.stain_texture import stain_texture_features
from healnet_cli.extractors.transform import resize_patches
from healnet_cli.slides import open_slide
from healnet_cli.stages.demo.synthetic_slides import write_pyramidal_tiff
from healnet_cli.stages.extract.config import ExtractConfig
from healnet_cli.stages.extract.engine import _guarded
from healnet_cli.stages.extract.items import SlidePlan, discover_items, read_plan
from healnet_cli.stages.extract.loader import Chunk, PatchChunks, make_chunks, make_loader, read_geometry, strip_runs
from healnet_cli.stages.extract.run import run_extract


def _plan(n: int, slide_id: str = "s") -> SlidePlan:
    return SlidePlan(slide_id, f"/nowhere/{slide_id}.tif", 0, 8, np.zeros((n, 2), np.int64))


def test_chunks_cover_every_patch_in_order() -> None:
    chunks = make_chunks([_plan(5, "a"), _plan(0, "b"), _plan(4, "c")], batch_size=2)
    assert [(c.slide, c.start, c.n) for c in chunks] == [(0, 0, 2), (0, 2, 2), (0, 4, 1), (2, 0, 2), (2, 2, 2)]


def test_loader_reads_resizes_and_reports_bad_slides(tmp_path: Path) -> None:
    add_slide(tmp_path, "good", n_patches=5)
    add_slide(tmp_path, "bad", corrupt=True, n_patches=3)
    items, notes = discover_items(tmp_path / "tiles")
    assert [i.id for i in items] == ["bad", "good"] and not notes
    plans = [read_plan(item) for item in items]
    dataset = PatchChunks(plans, make_chunks(plans, 2), input_px=32, interpolation="bilinear")
    batches = list(make_loader(dataset, num_workers=2, pin_memory=False))
    assert [(b["slide"], b["start"]) for b in batches] == [(0, 0), (0, 2), (1, 0), (1, 2), (1, 4)]
    assert all("error" in b and "bad.tif" in b["error"] for b in batches[:2])
    good = [b["data"] for b in batches[2:]]
    assert [g.shape for g in good] == [(2, 3, 32, 32), (2, 3, 32, 32), (1, 3, 32, 32)]
    assert all(g.dtype == torch.uint8 for g in good)


def test_uncommitted_coords_are_not_items(tmp_path: Path) -> None:
    add_slide(tmp_path, "a", n_patches=2)
    add_slide(tmp_path, "b", n_patches=2)
    (tmp_path / "tiles" / "b.manifest.json").unlink()  # tiling killed before the commit
    items, notes = discover_items(tmp_path / "tiles")
    assert [i.id for i in items] == ["a"] and "without a tile manifest" in notes[0]
    assert isinstance(items[0], WorkItem)


def test_loader_crash_becomes_a_reason() -> None:
    def broken():
        yield {"slide": 0}
        raise RuntimeError("DataLoader worker (pid 123) is killed by signal: Bus error")

    out = list(_guarded(broken()))
    assert out[0] == {"slide": 0} and "Bus error" in out[1]["crash"]


def test_strip_runs_join_only_gapless_aligned_row_neighbours() -> None:
    xy = np.array([[0, 0], [64, 0], [128, 0], [256, 0], [320, 0], [0, 64], [64, 64]], np.int64)
    assert strip_runs(xy, 64, 1.0) == [(0, 3), (3, 2), (5, 2)]
    assert strip_runs(xy, 16, 4.0) == [(0, 3), (3, 2), (5, 2)]  # level 1 of a 4x pyramid: 16 px there = 64 at level 0
    assert strip_runs(xy, 64, 1.0, max_run=2) == [(0, 2), (2, 1), (3, 2), (5, 2)]
    assert strip_runs(xy, 32, 2.0001) == [(i, 1) for i in range(7)]  # non-integral downsample: one read per patch
    assert strip_runs(xy + [1, 0], 16, 4.0) == [(i, 1) for i in range(7)]  # off the level's pixel grid
    assert strip_runs(np.zeros((0, 2), np.int64), 64, 1.0) == []


def test_strip_reads_give_the_pixels_of_separate_reads(tmp_path: Path) -> None:
    slide = add_slide(tmp_path, "s", n_patches=16)
    items, _ = discover_items(tmp_path / "tiles")
    plan = read_plan(items[0])
    keep = np.r_[0:5, 6, 8:12]  # gaps: several runs
    for level, size in ((0, 64), (1, 16)):
        sub = SlidePlan("s", str(slide), level, size, plan.xy[keep])
        dataset = PatchChunks([sub], [], input_px=size, interpolation="bilinear")
        with open_slide(slide) as reader:
            batch = dataset.read_chunk(reader, sub, Chunk(0, 0, len(keep)))
            one_by_one = np.stack([reader.read_region((int(x), int(y)), level, (size, size)) for x, y in sub.xy])
        assert torch.equal(batch.permute(0, 2, 3, 1), torch.from_numpy(one_by_one))


def test_read_geometry_picks_the_coarsest_level_holding_the_input() -> None:
    plan = SlidePlan("s", "/x.svs", 0, 512, np.zeros((1, 2), np.int64))  # 0.5 µm/px patches of a 40x slide
    aperio = [1.0, 4.0, 16.0]
    assert read_geometry(plan, aperio, None) == (0, 512)  # models: the tile stage's level
    assert read_geometry(plan, aperio, 128) == (1, 128)  # stain-texture: 1/16 of the pixels
    assert read_geometry(plan, aperio, 224) == (0, 512)  # no level holds 224 px but level 0
    assert read_geometry(plan, [1.0, 2.0, 4.0, 8.0], 128) == (2, 128)
    assert read_geometry(plan, [1.0, 3.0], 128) == (0, 512)  # 512 / 3 is not a whole patch


def test_coarse_read_gives_the_features_of_the_pyramid_level(tmp_path: Path) -> None:
    """stain-texture features read from level 1 of a 2x pyramid equal the features of those pixels."""
    slide = write_pyramidal_tiff(
        tmp_path / "s.tif", slide_pixels(3, 1024), mpp=0.25, levels=2, tile=256, level_factor=2
    )
    xy = np.array([(x, y) for y in (0, 512) for x in (0, 512)], np.int64)
    meta = {"slide_id": "s", "case_id": "s", "source_path": str(slide), "mpp": 0.25, "target_mpp": 0.5, "patch_px": 256,
            "patch_px_level0": 512, "read_level": 0, "read_patch_px": 512}  # fmt: skip
    path = write_coords(
        coords_path(tmp_path / "tiles", "s"), SlideCoords(xy[:, 0], xy[:, 1], np.ones(4, np.float32), meta)
    )
    ArtifactStore(tmp_path / "tiles", "tile", {}).commit(
        "s", "x", [path], meta={"slide_fingerprint": file_fingerprint(slide)}
    )
    config = ExtractConfig(workdir=tmp_path, extractor="stain-texture", num_workers=0)
    assert run_extract(config, console=Console(quiet=True)).exit_code == 0
    bag = read_features(features_path(tmp_path / "features" / "stain-texture", "s"))
    assert (bag.provenance["read_level"], bag.provenance["read_patch_px"]) == (1, 256)
    with open_slide(slide) as reader:
        level1 = np.stack([reader.read_region((int(x), int(y)), 1, (256, 256)) for x, y in xy])
    resized = resize_patches(torch.from_numpy(level1).permute(0, 3, 1, 2), 128, "bilinear")
    assert np.allclose(bag.features.float().numpy(), stain_texture_features(resized), atol=1e-2, rtol=1e-3)


def _jpeg_slide(path: Path, pixels: np.ndarray) -> Path:
    """A two-level JPEG (YCbCr) generic TIFF with 96 px tiles (patch grids do not align with them)."""
    import tifffile

    with tifffile.TiffWriter(path) as writer:
        for index, level in enumerate([pixels, np.ascontiguousarray(pixels[::2, ::2])]):
            extra = {"resolution": (20000, 20000), "resolutionunit": "CENTIMETER"} if index == 0 else {"subfiletype": 1}
            writer.write(level, tile=(96, 96), compression="jpeg", photometric="ycbcr", **extra)
    return path


def test_direct_tile_reads_give_the_batches_of_openslide_reads(tmp_path: Path) -> None:
    """Chunks read from directly decoded tiles (with the tile cache) equal chunks read through OpenSlide:
    deflate and JPEG slides, patches on and off the tile grid, level 0 and a coarse level."""
    pixels = slide_pixels(5, 768)
    deflate = write_pyramidal_tiff(tmp_path / "d.tif", pixels, mpp=0.5, levels=2, tile=128, level_factor=2)
    jpeg = _jpeg_slide(tmp_path / "j.tif", pixels)
    grid = np.array([(x, y) for y in range(16, 600, 80) for x in range(40, 700, 80)], np.int64)  # 80 px, off the tiles
    plans = [SlidePlan(f"s{i}", str(slide), 0, 80, grid) for i, slide in enumerate((deflate, jpeg))]
    chunks = make_chunks(plans, 24)
    for coarse in (False, True):  # coarse: 80 px at level 0 = 40 px at level 1, read there
        direct, through_openslide = (
            list(make_loader(PatchChunks(plans, chunks, input_px=40, interpolation="bilinear", coarse_read=coarse,
                                         direct_tiles=flag), num_workers=2, pin_memory=False))
            for flag in (True, False)
        )  # fmt: skip
        assert len(direct) == len(chunks) and all("error" not in b for b in direct)
        assert {b["read_level"] for b in direct} == {1 if coarse else 0}
        for a, b in zip(direct, through_openslide, strict=True):
            assert torch.equal(a["data"], b["data"])


def test_worker_opens_direct_regions_for_tiff_slides(tmp_path: Path) -> None:
    from healnet_cli.slides.direct_regions import DirectRegions
    from healnet_cli.stages.extract.loader import _SlideCache

    slide = add_slide(tmp_path, "s", n_patches=2)
    for flag, kind in ((True, DirectRegions), (False, type(open_slide(slide)))):
        cache = _SlideCache(direct_tiles=flag)
        assert type(cache.get(str(slide))) is kind
        cache.close()


def test_stain_texture_features_are_the_same_with_direct_tile_reads(tmp_path: Path, monkeypatch) -> None:
    from healnet_cli.stages.extract import loader

    add_slide(tmp_path, "a", seed=1, n_patches=16)
    features = []
    for flag, name in ((True, "direct"), (False, "openslide")):
        monkeypatch.setattr(loader, "DIRECT_TILES", flag)
        config = ExtractConfig(workdir=tmp_path, extractor="stain-texture", num_workers=1, name=name)
        assert run_extract(config, console=Console(quiet=True)).exit_code == 0
        features.append(read_features(features_path(tmp_path / "features" / name, "a")).features)
    assert torch.equal(features[0], features[1])
