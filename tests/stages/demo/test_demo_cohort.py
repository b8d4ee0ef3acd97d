"""The demo cohort generator: deterministic, OpenSlide-readable slides with mpp, planted signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from healnet_cli.core.errors import InputError
from healnet_cli.stages.demo.cohort import build_demo_cohort, draw_truth
from healnet_cli.stages.demo.tissue import compose_slide, load_patch_library, tumour_share


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    return build_demo_cohort(tmp_path_factory.mktemp("cohort"), n_patients=16, seed=3, slide_px=512)


def _slide_pixels(path: Path) -> np.ndarray:
    import openslide

    with openslide.OpenSlide(str(path)) as slide:
        return np.asarray(slide.read_region((0, 0), 0, slide.dimensions).convert("RGB"))


def test_files_and_counts(cohort) -> None:
    table = pd.read_csv(cohort.table_csv)
    truth = pd.read_csv(cohort.truth_csv, index_col=0)
    slides = pd.read_csv(cohort.slides_csv)
    assert list(table["case_id"]) == [f"DEMO-{i:04d}" for i in range(1, 17)]
    assert {"survival_months", "censorship", "age", "is_female", "slide_id"} <= set(table.columns)
    assert sum(c.endswith("_rnaseq") for c in table.columns) == 120
    assert sum(c.endswith("_cnv") for c in table.columns) == 60
    assert (table["survival_months"] > 0).all()
    assert set(table["censorship"]) <= {0, 1}
    # patients without a slide have no file and no slide row; without RNA have empty RNA cells
    no_slide = truth.index[~truth["has_slide"]]
    no_rna = truth.index[~truth["has_rna"]]
    assert len(no_slide) == 2 and len(no_rna) == 2 and not set(no_slide) & set(no_rna)
    assert set(slides["case_id"]) == set(truth.index[truth["has_slide"]])
    assert cohort.n_slides == len(list(cohort.slides_dir.glob("*.tif"))) == 14
    rna = table.set_index("case_id").filter(like="_rnaseq")
    assert rna.loc[no_rna].isna().all(axis=None)
    assert rna.drop(index=no_rna).notna().all(axis=None)
    cnv = table.filter(like="_cnv")
    assert cnv.notna().all(axis=None) and np.isin(cnv.to_numpy(), [-2, -1, 0, 1, 2]).all()
    for path, case_id in zip(slides["path"], slides["case_id"], strict=True):
        assert Path(path).name == f"{case_id}-01.tif" and Path(path).is_file()


def test_slides_are_openslide_pyramids_with_mpp(cohort) -> None:
    import openslide

    path = sorted(cohort.slides_dir.glob("*.tif"))[0]
    with openslide.OpenSlide(str(path)) as slide:
        assert slide.dimensions == (512, 384)
        assert slide.level_count >= 2
        assert float(slide.properties[openslide.PROPERTY_NAME_MPP_X]) == pytest.approx(0.5)
        assert float(slide.properties[openslide.PROPERTY_NAME_MPP_Y]) == pytest.approx(0.5)


def test_deterministic_under_seed(cohort, tmp_path: Path) -> None:
    again = build_demo_cohort(tmp_path / "again", n_patients=16, seed=3, slide_px=512)
    other = build_demo_cohort(tmp_path / "other", n_patients=16, seed=4, slide_px=512)
    assert again.table_csv.read_text() == cohort.table_csv.read_text()
    assert again.truth_csv.read_text() == cohort.truth_csv.read_text()
    name = sorted(cohort.slides_dir.glob("*.tif"))[0].name
    np.testing.assert_array_equal(_slide_pixels(again.slides_dir / name), _slide_pixels(cohort.slides_dir / name))
    assert other.table_csv.read_text() != cohort.table_csv.read_text()


def test_planted_signal_in_survival_and_rna() -> None:
    from sksurv.metrics import concordance_index_censored

    truth = draw_truth(400, np.random.default_rng(0))
    event, time = truth["event"].to_numpy(), truth["time_months"].to_numpy()
    c_all = concordance_index_censored(event, time, truth["log_hazard"])[0]
    c_slide = concordance_index_censored(event, time, truth["slide_factor"])[0]
    c_rna = concordance_index_censored(event, time, truth["rna_factor"])[0]
    # each factor alone ranks patients clearly better than chance, both together clearly better still
    assert c_all > 0.8 and c_all > c_slide + 0.08 and c_all > c_rna + 0.08
    assert 0.6 < c_slide < 0.8 and 0.6 < c_rna < 0.8
    assert 0.25 <= 1 - truth["event"].mean() <= 0.5  # censoring share


def test_planted_signal_in_rna_table(cohort) -> None:
    table = pd.read_csv(cohort.table_csv, index_col="case_id")
    truth = pd.read_csv(cohort.truth_csv, index_col=0)
    signal_genes = [g for g in table.filter(like="_rnaseq") if g in cohort.root.joinpath("README.md").read_text()]
    assert len(signal_genes) == 8
    keep = truth["has_rna"].to_numpy()
    corr = table.loc[keep, signal_genes].corrwith(truth.loc[keep, "rna_factor"]).abs()
    assert (corr > 0.5).all(), corr


def test_slide_pattern_follows_slide_factor(cohort) -> None:
    from scipy.stats import spearmanr

    truth = pd.read_csv(cohort.truth_csv, index_col=0)
    shares = {p.name[:9]: tumour_share(_slide_pixels(p)) for p in cohort.slides_dir.glob("*.tif")}
    ids = sorted(shares)
    rho = spearmanr([shares[i] for i in ids], truth.loc[ids, "slide_factor"]).statistic
    assert rho > 0.6, rho


def test_compose_slide_tumour_fraction_extremes() -> None:
    library = load_patch_library(tile_px=64, n_crops=90, seed=1)
    rng = np.random.default_rng(0)
    low = compose_slide(library, height_px=512, width_px=512, tumour_fraction=0.0, rng=rng)
    high = compose_slide(library, height_px=512, width_px=512, tumour_fraction=1.0, rng=rng)
    assert low.shape == (512, 512, 3) and low.dtype == np.uint8
    assert tumour_share(high) > tumour_share(low) + 0.3
    with pytest.raises(ValueError, match="tumour_fraction"):
        compose_slide(library, height_px=64, width_px=64, tumour_fraction=1.5, rng=rng)


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"n_patients": 3}, "at least 6 patients"), ({"slide_px": 256}, "512")]
)
def test_bad_sizes(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        build_demo_cohort(tmp_path, **kwargs)
