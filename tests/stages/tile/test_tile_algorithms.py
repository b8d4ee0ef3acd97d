"""Pure parts of the tile stage: tissue detection, grid geometry, tissue fractions, exports, inputs."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from tile_factories import disk_slide

from healnet_cli.core.errors import InputError
from healnet_cli.slides import open_slide
from healnet_cli.stages.tile import export
from healnet_cli.stages.tile.config import TileConfig, parse_exports
from healnet_cli.stages.tile.grid import grid_coords, grid_spec, tissue_fraction
from healnet_cli.stages.tile.inputs import collect_slides, read_mpp_csv
from healnet_cli.stages.tile.tissue import (
    detect_tissue,
    fill_small_holes,
    otsu_threshold,
    remove_small_objects,
    saturation,
)


def _disk_image(size: int = 200, radius: float = 60, noise: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] + 0.5
    disk = (x - size / 2) ** 2 + (y - size / 2) ** 2 <= radius**2
    rgb = np.clip(240 + rng.integers(-noise, noise + 1, size=(size, size, 3)), 0, 255).astype(np.uint8)
    rgb[disk] = np.clip(np.array([200, 120, 170]) + rng.integers(-20, 21, size=(int(disk.sum()), 3)), 0, 255)
    return rgb, disk


def test_saturation_and_otsu() -> None:
    rgb = np.array([[[255, 255, 255], [0, 0, 0], [200, 100, 100], [100, 0, 0]]], dtype=np.uint8)
    assert saturation(rgb).tolist() == [[0, 0, 127, 255]]
    values = np.array([10] * 50 + [200] * 50, dtype=np.uint8)
    assert 10 <= otsu_threshold(values) < 200
    assert otsu_threshold(np.full(10, 7, dtype=np.uint8)) == 0.0


def test_detects_a_disk_within_its_boundary_pixels() -> None:
    rgb, disk = _disk_image()
    mask, threshold = detect_tissue(rgb, 16.0, min_area_um2=0)
    assert threshold >= 20
    assert abs(int(mask.sum()) - int(disk.sum())) < 0.05 * disk.sum()
    assert (mask & ~disk).sum() < 0.03 * disk.sum()


@pytest.mark.parametrize("noise", [0, 6, 12])
def test_blank_glass_yields_no_tissue(noise: int) -> None:
    rng = np.random.default_rng(noise)
    rgb = np.clip(238 + rng.integers(-noise, noise + 1, size=(150, 150, 3)), 0, 255).astype(np.uint8)
    mask, _ = detect_tissue(rgb, 16.0, min_area_um2=1e4)
    assert not mask.any()


def test_an_all_tissue_crop_is_all_tissue() -> None:
    rng = np.random.default_rng(2)
    pale = np.array([215, 170, 200]) + rng.integers(-8, 9, size=(120, 120, 3))  # S ~ 55
    dark = np.array([150, 70, 160]) + rng.integers(-8, 9, size=(120, 120, 3))  # S ~ 140
    rgb = np.where((np.arange(120)[None, :, None] // 10) % 2 == 0, pale, dark).clip(0, 255).astype(np.uint8)
    mask, threshold = detect_tissue(rgb, 16.0, min_area_um2=1e4)
    assert threshold == 20 and mask.mean() > 0.99


def test_threshold_is_clamped() -> None:
    from healnet_cli.stages.tile.tissue import SATURATION_CAP, tissue_threshold

    glass_and_dark_tissue = np.array([2] * 500 + [200] * 500, dtype=np.uint8)
    assert tissue_threshold(glass_and_dark_tissue) == SATURATION_CAP
    glass_only = np.array([1, 2, 3, 4] * 100, dtype=np.uint8)
    assert tissue_threshold(glass_only) == 20


def test_small_objects_removed_and_small_holes_filled() -> None:
    mask = np.zeros((40, 40), dtype=bool)
    mask[5:25, 5:25] = True
    mask[12:15, 12:15] = False  # a 9 px hole
    mask[30:32, 30:32] = True  # a 4 px speck
    filled = fill_small_holes(mask, 10)
    assert filled[12:15, 12:15].all()
    assert not fill_small_holes(mask, 9)[13, 13]  # holes >= threshold stay
    cleaned = remove_small_objects(filled, 5)
    assert not cleaned[30:32, 30:32].any() and cleaned[5:25, 5:25].all()


def test_min_area_is_in_square_micrometres() -> None:
    rgb, _ = _disk_image(radius=10)  # ~314 px
    assert detect_tissue(rgb, 10.0, min_area_um2=300 * 100)[0].any()  # 3e4 µm² < 3.1e4 µm²
    assert not detect_tissue(rgb, 10.0, min_area_um2=400 * 100)[0].any()


@pytest.mark.parametrize(
    ("mpp", "target", "patch", "overlap", "downsamples", "expected"),
    [
        (0.25, 0.5, 256, 0, [1.0, 4.0, 16.0], (512, 512, 0, 512)),
        (0.25, 0.5, 256, 0, [1.0, 2.0, 4.0], (512, 512, 1, 256)),
        (0.5, 0.5, 224, 32, [1.0, 4.0], (224, 192, 0, 224)),
        (0.25, 1.0, 256, 0, [1.0, 3.9978, 15.98], (1024, 1024, 1, 256)),
        (1.0, 0.5, 256, 0, [1.0], (128, 128, 0, 128)),
    ],
)
def test_grid_spec(mpp, target, patch, overlap, downsamples, expected) -> None:
    spec = grid_spec(mpp=mpp, target_mpp=target, patch_px=patch, overlap_px=overlap, level_downsamples=downsamples)
    assert (spec.patch_px_level0, spec.stride_px_level0, spec.read_level, spec.read_patch_px) == expected
    assert spec.upsampled == (mpp > target)


def test_grid_coords_are_aligned_and_inside() -> None:
    spec = grid_spec(mpp=0.25, target_mpp=0.5, patch_px=100, overlap_px=20, level_downsamples=[1.0])
    x, y = grid_coords((1000, 700), spec)
    assert spec.stride_px_level0 == 160 and spec.patch_px_level0 == 200
    assert set(np.unique(x)) == set(range(0, 1000 - 200 + 1, 160))
    assert set(np.unique(y)) == set(range(0, 700 - 200 + 1, 160))
    assert (x + 200 <= 1000).all() and (y + 200 <= 700).all()


def test_tissue_fraction_is_exact() -> None:
    rng = np.random.default_rng(3)
    mask = rng.random((30, 40)) < 0.4
    ds = 8.0
    level0 = np.kron(mask, np.ones((8, 8), dtype=bool))  # the mask at level 0
    x = rng.integers(0, 40 * 8 - 37, size=50)
    y = rng.integers(0, 30 * 8 - 37, size=50)
    fractions = tissue_fraction(mask, ds, x, y, 37)
    brute = np.array([level0[b : b + 37, a : a + 37].mean() for a, b in zip(x, y, strict=True)])
    np.testing.assert_allclose(fractions, brute, atol=1e-5)
    assert tissue_fraction(mask, ds, np.zeros(0, np.int64), np.zeros(0, np.int64), 10).shape == (0,)


def test_clam_h5_and_geojson(tmp_path: Path) -> None:
    meta = {
        "patch_px_level0": 512,
        "level0_width": 1000,
        "level0_height": 800,
        "slide_id": "s1",
        "target_mpp": 0.5,
        "patch_px": 256,
        "mpp": 0.25,
        "mpp_source": "csv",
        "read_level": 0,
        "read_patch_px": 512,
        "overlap_px": 0,
    }
    xy = np.array([[0, 0], [512, 0]], dtype=np.int64)
    path = export.write_clam_h5(tmp_path / "s1.h5", xy, meta)
    with h5py.File(path) as handle:
        np.testing.assert_array_equal(handle["coords"][:], xy)
        assert handle["coords"].dtype == np.int64
        assert handle["coords"].attrs["patch_size"] == 512 and handle["coords"].attrs["patch_level"] == 0
    empty = export.write_clam_h5(tmp_path / "e.h5", np.zeros((0, 2)), meta)
    with h5py.File(empty) as handle:
        assert handle["coords"].shape == (0, 2)

    mask = np.zeros((20, 20), dtype=bool)
    mask[2:12, 3:15] = True
    mask[5:8, 6:9] = False  # a hole
    polygons = export.tissue_polygons(mask, 10.0)
    assert len(polygons) == 1 and len(polygons[0]) == 2  # exterior + hole
    exterior = np.array(polygons[0][0])
    assert exterior[:, 0].min() == pytest.approx(30, abs=6) and exterior[:, 0].max() == pytest.approx(150, abs=6)
    assert exterior[:, 1].min() == pytest.approx(20, abs=6) and exterior[:, 1].max() == pytest.approx(120, abs=6)
    assert polygons[0][0][0] == polygons[0][0][-1]
    out = export.write_geojson(tmp_path / "s1.geojson", polygons, slide_id="s1")
    payload = json.loads(out.read_text())
    assert payload["type"] == "FeatureCollection"
    feature = payload["features"][0]
    assert feature["geometry"]["type"] == "Polygon" and feature["properties"]["objectType"] == "annotation"


def test_config_validation() -> None:
    assert parse_exports(["clam,GeoJSON", "clam"]) == ("clam", "geojson")
    for kwargs, match in [
        ({"mpp": 0}, "--mpp"),
        ({"overlap": 256}, "--overlap"),
        ({"min_tissue": 1.5}, "--min-tissue"),
        ({"min_area": -1}, "--min-area"),
        ({"export": ("tiff",)}, "--export"),
        ({"patch_size": 4}, "--patch-size"),
        ({"default_mpp": -0.5}, "--default-mpp"),
        ({"seg_mpp": 0}, "--seg-mpp"),
    ]:
        with pytest.raises(InputError, match=match):
            TileConfig(**kwargs)


def test_case_ids_are_patient_ids(tmp_path: Path) -> None:
    """Tile derives a slide's case id with the one patient parser: any case, any separator."""
    for name in ("TCGA-06-0174-01Z-00-DX3.8d6b5b0c.svs", "tcga-2f-a9ko-01z-00-dx1.svs", "patient7_slideA.tif"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "slides.csv").write_text("path,case_id\npatient7_slideA.tif,tcga.aa.0001\n")
    cases = {s.slide_id: s.case_id for s in collect_slides([tmp_path])}
    assert cases == {
        "TCGA-06-0174-01Z-00-DX3.8d6b5b0c": "TCGA-06-0174",
        "tcga-2f-a9ko-01z-00-dx1": "TCGA-2F-A9KO",
        "patient7_slideA": "patient7_slideA",
    }
    assert collect_slides([], slides_csv=tmp_path / "slides.csv")[0].case_id == "TCGA-AA-0001"


def test_collect_slides_inputs(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for name in ("a/s1.svs", "a/sub/s2.tiff", "a/notes.txt", "a/.hidden.svs"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    slides = collect_slides([tmp_path / "a"])
    assert [s.slide_id for s in slides] == ["s1", "s2"]
    (tmp_path / "b" / "s1.ndpi").write_bytes(b"x")
    with pytest.raises(InputError, match="s1:.*s1.ndpi.*s1.svs|s1:.*s1.svs.*s1.ndpi"):
        collect_slides([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(InputError, match="not found"):
        collect_slides([tmp_path / "missing"])
    with pytest.raises(InputError, match="unsupported extension"):
        collect_slides([tmp_path / "a" / "notes.txt"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no slides found"):
        collect_slides([tmp_path / "empty"])


def test_slides_csv_and_mpp_csv(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"x")
    (tmp_path / "TCGA-AA-1234-01Z.svs").write_bytes(b"x")
    csv = tmp_path / "slides.csv"
    csv.write_text("path,case_id,mpp\nx.png,P1,0.5\nTCGA-AA-1234-01Z.svs,,\n")
    slides = {s.slide_id: s for s in collect_slides([], slides_csv=csv)}
    assert slides["x"].case_id == "P1" and slides["x"].mpp_override == 0.5
    assert slides["TCGA-AA-1234-01Z"].case_id == "TCGA-AA-1234" and slides["TCGA-AA-1234-01Z"].mpp_override is None
    mpp_csv = tmp_path / "mpp.csv"
    mpp_csv.write_text("slide_id,mpp\nTCGA-AA-1234-01Z.svs,0.25\nx,0.3\n")
    assert read_mpp_csv(mpp_csv) == {"TCGA-AA-1234-01Z": 0.25, "x": 0.3}
    slides = {s.slide_id: s for s in collect_slides([], slides_csv=csv, mpp_csv=mpp_csv)}
    assert slides["x"].mpp_override == 0.3  # --mpp-csv beats the slides CSV
    for text, match in [
        ("file,mpp\nx.png,0.5\n", "no 'path' column"),
        ("path,mpp\nmissing.svs,0.5\n", "not found: .*missing.svs"),
        ("path,mpp\nx.png,abc\n", "row 2: mpp 'abc'"),
        ("path,mpp\nx.png,-1\n", "not a positive number"),
    ]:
        csv.write_text(text)
        with pytest.raises(InputError, match=match):
            collect_slides([], slides_csv=csv)
    mpp_csv.write_text("name,value\nx,1\n")
    with pytest.raises(InputError, match="needs columns slide_id and mpp"):
        read_mpp_csv(mpp_csv)


def test_disk_slide_factory_is_readable(tmp_path: Path) -> None:
    path = disk_slide(tmp_path, size=(600, 500))
    with open_slide(path) as reader:
        assert reader.dimensions == (600, 500)


def test_mirax_fingerprint_covers_its_data_folder(tmp_path) -> None:
    import os

    from healnet_cli.stages.tile.run import slide_fingerprint

    slide = tmp_path / "case.mrxs"
    slide.write_bytes(b"mrxs index")
    plain = tmp_path / "other.svs"
    plain.write_bytes(b"svs")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.dat").write_bytes(b"not a companion of an .svs")
    before_plain = slide_fingerprint(plain)
    (tmp_path / "other" / "x.dat").write_bytes(b"changed")
    assert slide_fingerprint(plain) == before_plain
    alone = slide_fingerprint(slide)
    data = tmp_path / "case" / "Data0000.dat"
    data.parent.mkdir()
    data.write_bytes(b"pixels v1")
    with_folder = slide_fingerprint(slide)
    assert with_folder != alone
    data.write_bytes(b"pixels v2")
    os.utime(data, ns=(1, 1))
    assert slide_fingerprint(slide) != with_folder
