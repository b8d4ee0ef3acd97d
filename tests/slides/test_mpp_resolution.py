"""mpp resolution order: CSV override, OpenSlide, TIFF tags, vendor fields, objective power, default."""

from __future__ import annotations

from pathlib import Path

import pytest

from healnet_cli.core.errors import ItemError
from healnet_cli.slides import open_slide, resolve_mpp
from healnet_cli.slides.mpp import mpp_from_properties
from healnet_cli.stages.demo.synthetic_slides import aperio_description, tissue_disk_tile_fn, write_pyramidal_tiff


class _FakeReader:
    """Only what resolve_mpp reads: a path and properties."""

    def __init__(self, properties: dict[str, str]):
        self.path = Path("slide.svs")
        self.properties = properties


@pytest.mark.parametrize(
    ("props", "mpp", "source"),
    [
        ({"openslide.mpp-x": "0.2520", "openslide.mpp-y": "0.2480"}, 0.25, "openslide.mpp-x"),
        (
            {"tiff.XResolution": "40000", "tiff.YResolution": "40000", "tiff.ResolutionUnit": "centimeter"},
            0.25,
            "tiff.XResolution (centimeter)",
        ),
        ({"tiff.XResolution": "50800", "tiff.ResolutionUnit": "inch"}, 0.5, "tiff.XResolution (inch)"),
        ({"aperio.MPP": "0.4990"}, 0.499, "aperio.MPP"),
        (
            {"tiff.ImageDescription": "Aperio Image Library v1|AppMag = 20|MPP = 0.2635|Date = 1"},
            0.2635,
            "tiff.ImageDescription MPP",
        ),
        ({"openslide.objective-power": "40"}, 0.25, "objective-power (openslide.objective-power)"),
        ({"aperio.AppMag": "20"}, 0.5, "objective-power (aperio.AppMag)"),
        # an image editor's 72 dpi is no microscope resolution: skipped, objective power used
        (
            {"tiff.XResolution": "72", "tiff.ResolutionUnit": "inch", "openslide.objective-power": "20"},
            0.5,
            "objective-power (openslide.objective-power)",
        ),
        # OpenSlide's value wins over the tags and the vendor field
        (
            {
                "openslide.mpp-x": "0.25",
                "tiff.XResolution": "20000",
                "tiff.ResolutionUnit": "centimeter",
                "aperio.MPP": "0.3",
            },
            0.25,
            "openslide.mpp-x",
        ),
    ],
)
def test_sources_in_order(props: dict[str, str], mpp: float, source: str) -> None:
    value, found = resolve_mpp(_FakeReader(props), override=None, default_mpp=None)
    assert value == pytest.approx(mpp, rel=1e-6)
    assert found == source


def test_override_beats_metadata_and_default_is_last() -> None:
    reader = _FakeReader({"openslide.mpp-x": "0.25", "openslide.mpp-y": "0.25"})
    assert resolve_mpp(reader, override=0.5, default_mpp=1.0) == (0.5, "csv")
    assert resolve_mpp(reader, override=None, default_mpp=1.0) == (0.25, "openslide.mpp-x")
    assert resolve_mpp(_FakeReader({}), override=None, default_mpp=1.0) == (1.0, "default")


def test_no_mpp_fails_naming_the_fix() -> None:
    props = {"tiff.ResolutionUnit": "none", "tiff.XResolution": "1"}
    assert mpp_from_properties(props) is None
    with pytest.raises(ItemError, match="--mpp-csv") as info:
        resolve_mpp(_FakeReader(props), override=None, default_mpp=None)
    assert "slide.svs" in str(info.value)


@pytest.mark.parametrize("bad", [0.0, -1.0, 1e6, float("nan")])
def test_implausible_override_or_default_fails(bad: float) -> None:
    with pytest.raises(ItemError, match="not a positive number"):
        resolve_mpp(_FakeReader({}), override=bad, default_mpp=None)
    with pytest.raises(ItemError, match="--default-mpp"):
        resolve_mpp(_FakeReader({}), override=None, default_mpp=bad)


@pytest.mark.parametrize(
    ("kwargs", "source_prefix"),
    [
        ({"mpp": 0.25, "resolution_unit": "cm"}, "openslide.mpp-x"),
        ({"mpp": 0.25, "resolution_unit": "inch"}, "openslide.mpp-x"),
        ({"mpp": 0.25, "resolution_unit": None, "aperio_app_mag": 40}, "openslide.mpp-x"),
    ],
)
def test_real_files(tmp_path: Path, kwargs: dict, source_prefix: str) -> None:
    mpp = kwargs.pop("mpp")
    path = write_pyramidal_tiff(tmp_path / "s.tif", tissue_disk_tile_fn(300, 200), mpp, 1, size=(300, 200), **kwargs)
    with open_slide(path) as reader:
        value, source = resolve_mpp(reader, override=None, default_mpp=None)
    assert value == pytest.approx(0.25, rel=1e-3) and source.startswith(source_prefix)


def test_objective_power_only_file(tmp_path: Path) -> None:
    desc = aperio_description(300, 200, mpp=None, app_mag=20)
    path = write_pyramidal_tiff(
        tmp_path / "s.svs",
        tissue_disk_tile_fn(300, 200),
        None,
        1,
        size=(300, 200),
        description=desc,
        resolution_unit=None,
    )
    with open_slide(path) as reader:
        assert resolve_mpp(reader, override=None, default_mpp=None) == (
            0.5,
            "objective-power (openslide.objective-power)",
        )


def test_plain_image_needs_csv_or_default(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (20, 10), (255, 255, 255)).save(tmp_path / "x.png", dpi=(72, 72))
    with open_slide(tmp_path / "x.png") as reader:
        with pytest.raises(ItemError, match="--mpp-csv"):
            resolve_mpp(reader, override=None, default_mpp=None)
        assert resolve_mpp(reader, override=0.5, default_mpp=None) == (0.5, "csv")
