"""stain-texture on the real Aperio H&E slide (skipped without ../shared/data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from healnet_cli.artifacts.coords import SlideCoords, coords_path, write_coords
from healnet_cli.artifacts.features import features_path, read_features
from healnet_cli.cli import build_app
from healnet_cli.core.fingerprint import file_fingerprint
from healnet_cli.core.store import ArtifactStore
from healnet_cli.extractors.stain_texture import feature_names


@pytest.mark.real_data
def test_stain_texture_on_real_he_slide(shared_data: Path, tmp_path: Path) -> None:
    slide = shared_data / "slides" / "CMU-1-Small-Region.svs"
    if not slide.is_file():
        pytest.skip(f"{slide} not found")
    xy = np.array([(x, y) for y in range(512, 2048, 512) for x in range(256, 2048, 512)], dtype=np.int64)
    meta = {
        "slide_id": "cmu1", "case_id": "cmu1", "source_path": str(slide), "mpp": 0.499, "target_mpp": 0.5,
        "patch_px": 256, "patch_px_level0": 256, "read_level": 0, "read_patch_px": 256,
    }  # fmt: skip
    tiles = tmp_path / "tiles"
    path = write_coords(coords_path(tiles, "cmu1"), SlideCoords(xy[:, 0], xy[:, 1], np.ones(len(xy), np.float32), meta))
    fingerprint = file_fingerprint(slide)
    ArtifactStore(tiles, "tile", {}).commit("cmu1", fingerprint, [path], meta={"slide_fingerprint": fingerprint})
    result = CliRunner().invoke(build_app(), ["extract", "-w", str(tmp_path), "-e", "stain-texture", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["done"] == 1
    bag = read_features(features_path(tmp_path / "features" / "stain-texture", "cmu1"))
    feats = bag.features.float().numpy()
    assert feats.shape == (len(xy), len(feature_names())) and np.isfinite(feats).all()
    names = feature_names()
    # H&E: haematoxylin and eosin both present, DAB (no IHC) much weaker than either
    h, e, d = (feats[:, names.index(f"hed_{c}_mean")].mean() for c in "hed")
    assert h > 0 and e > 0 and d < max(h, e)
    assert feats.std(axis=0).max() > 0  # patches differ
