"""healnet extract end to end on tiny slides: outputs, provenance, caching, failures, exit codes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from extract_factories import add_slide, save_random_weights
from typer.testing import CliRunner

from healnet_cli.artifacts.features import features_path, read_features
from healnet_cli.cli import build_app
from healnet_cli.core.fingerprint import sha256_file

runner = CliRunner()
TINY = ["-e", "timm:test_resnet", "--device", "cpu", "--num-workers", "1", "--batch-size", "4"]


def _extract(workdir: Path, *args: str):
    return runner.invoke(build_app(), ["extract", "-w", str(workdir), *args])


def _folder(workdir: Path, name: str = "timm-test_resnet") -> Path:
    return workdir / "features" / name


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.safetensors")}


def test_outputs_and_provenance_round_trip(workspace: Path, weights_file: Path) -> None:
    result = _extract(workspace, *TINY, "--weights", str(weights_file), "--export", "clam", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"done": 3, "skipped": 0, "failed": 0}
    folder = _folder(workspace)
    bag = read_features(features_path(folder, "s1"))
    assert bag.features.shape == (6, 96) and bag.features.dtype == torch.float16
    assert bag.coords.dtype == torch.int64 and bag.coords[:2].tolist() == [[0, 0], [64, 0]]
    prov = bag.provenance
    assert prov["extractor"] == "timm:test_resnet" and prov["dim"] == 96 and prov["slide_id"] == "s1"
    assert prov["case_id"] == "case-s1" and prov["patch_mpp"] == 0.5 and prov["precision"] == "fp32"
    assert prov["weights"] == {"source": "file", "file": "tiny.safetensors", "sha256": sha256_file(weights_file)}
    assert prov["transform"]["input_px"] == 160 and prov["transform"]["mean"] == [0.5, 0.5, 0.5]
    assert prov["dtype"] == "float16" and "healnet_version" in prov
    empty = read_features(features_path(folder, "s3"))
    assert empty.features.shape == (0, 96) and empty.coords.shape == (0, 2)
    clam = torch.load(folder / "s1.pt", weights_only=True)
    assert clam.dtype == torch.float32 and torch.allclose(clam.half(), bag.features)
    assert (folder / "config.yaml").is_file() and (folder / "status.csv").is_file()


def test_rerun_skips_force_recomputes_new_weights_stale(workspace: Path, make_weights) -> None:
    w1, w2 = make_weights("a.pt", seed=0), make_weights("b.pt", seed=1)
    assert _extract(workspace, *TINY, "--weights", str(w1)).exit_code == 0
    before = _mtimes(_folder(workspace))
    again = _extract(workspace, *TINY, "--weights", str(w1), "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["counts"]["skipped"] == 3
    assert _mtimes(_folder(workspace)) == before
    forced = _extract(workspace, *TINY, "--weights", str(w1), "--force", "--json")
    assert json.loads(forced.stdout)["counts"]["done"] == 3
    other = _extract(workspace, *TINY, "--weights", str(w2), "--force", "--json")
    assert json.loads(other.stdout)["counts"]["done"] == 3  # other weights replace the features only with --force
    assert read_features(features_path(_folder(workspace), "s1")).provenance["weights"]["file"] == "b.pt"
    f32 = _extract(workspace, *TINY, "--weights", str(w2), "--dtype", "float32", "--json")
    assert json.loads(f32.stdout)["counts"]["done"] == 3  # different dtype: not fresh


def test_other_weights_never_overwrite_features_silently(workspace: Path, make_weights) -> None:
    """--random-init (or other weights) after --weights is refused (exit 2, nothing touched) and
    points to --name / --force; --name keeps both sets side by side."""
    w1 = make_weights("a.pt", seed=0)
    assert _extract(workspace, *TINY, "--weights", str(w1)).exit_code == 0
    before = _mtimes(_folder(workspace))
    refused = _extract(workspace, *TINY, "--random-init")
    assert refused.exit_code == 2
    assert "holds features of timm:test_resnet sha256:" in refused.output and "random-init:seed0" in refused.output
    assert "--name NAME" in refused.output and "--force" in refused.output
    assert _mtimes(_folder(workspace)) == before
    side = _extract(workspace, *TINY, "--random-init", "--name", "test-resnet-random", "--json")
    assert side.exit_code == 0 and json.loads(side.stdout)["counts"]["done"] == 3
    assert (
        read_features(features_path(_folder(workspace, "test-resnet-random"), "s1")).provenance["weights"]["source"]
        == "random-init"
    )
    assert _mtimes(_folder(workspace)) == before
    bad = _extract(workspace, *TINY, "--random-init", "--name", "a/b")
    assert bad.exit_code == 2 and "--name 'a/b'" in bad.output


def test_retiled_slide_is_stale(workspace: Path, weights_file: Path) -> None:
    assert _extract(workspace, *TINY, "--weights", str(weights_file)).exit_code == 0
    time.sleep(0.01)
    add_slide(workspace, "s2", seed=2, n_patches=3)  # re-tiled with fewer patches
    result = _extract(workspace, *TINY, "--weights", str(weights_file), "--json")
    assert json.loads(result.stdout)["counts"] == {"done": 1, "skipped": 2, "failed": 0}
    assert read_features(features_path(_folder(workspace), "s2")).features.shape == (3, 96)


def test_corrupt_slide_among_good_ones(workspace: Path, weights_file: Path) -> None:
    add_slide(workspace, "bad", corrupt=True)
    result = _extract(workspace, *TINY, "--weights", str(weights_file), "--json")
    assert result.exit_code == 3
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"done": 3, "skipped": 0, "failed": 1}
    assert summary["failed"][0]["item"] == "bad" and "bad.tif" in summary["failed"][0]["reason"]
    assert not features_path(_folder(workspace), "bad").exists()
    assert features_path(_folder(workspace), "s2").exists()


def test_damaged_tile_fails_its_slide_with_one_line(workspace: Path, weights_file: Path) -> None:
    """A tile whose bytes are garbage (decoded directly, not through OpenSlide) fails that slide only."""
    import tifffile

    from healnet_cli.artifacts.coords import coords_path
    from healnet_cli.core.fingerprint import file_fingerprint
    from healnet_cli.core.store import ArtifactStore

    slide = add_slide(workspace, "dmg", n_patches=4)
    with tifffile.TiffFile(slide) as tif:
        offset, count = tif.pages[0].dataoffsets[0], tif.pages[0].databytecounts[0]
    with open(slide, "r+b") as handle:
        handle.seek(offset)
        handle.write(b"\xff" * count)
    fingerprint = file_fingerprint(slide)  # tiled after the damage
    store = ArtifactStore(workspace / "tiles", "tile", {"target_mpp": 0.5, "patch_px": 64})
    store.commit("dmg", fingerprint, [coords_path(workspace / "tiles", "dmg")], meta={"slide_fingerprint": fingerprint})
    result = _extract(workspace, *TINY, "--weights", str(weights_file), "--json")
    summary = json.loads(result.stdout)
    failed = {f["item"]: f["reason"] for f in summary["failed"]}
    assert result.exit_code == 3 and summary["counts"]["done"] == 3, result.output
    assert "dmg.tif: cannot decode segment 0" in failed["dmg"] and "\n" not in failed["dmg"]


def test_on_error_fail_stops(workspace: Path, weights_file: Path) -> None:
    add_slide(workspace, "a0-bad", corrupt=True)  # sorts first
    result = _extract(
        workspace, *TINY, "--weights", str(weights_file), "--on-error", "fail", "--num-workers", "0", "--json"
    )
    assert result.exit_code == 3
    assert json.loads(result.stdout)["counts"]["failed"] == 1


def test_non_finite_features_fail_the_slide(workspace: Path, tmp_path: Path) -> None:
    path = save_random_weights(tmp_path / "nan.pt")
    state = torch.load(path, weights_only=True)
    key = next(k for k in state if k.endswith("weight") and state[k].ndim == 4)
    state[key] = torch.full_like(state[key], float("nan"))
    torch.save(state, path)
    result = _extract(workspace, *TINY, "--weights", str(path), "--json")
    assert result.exit_code == 3
    summary = json.loads(result.stdout)
    assert summary["counts"]["failed"] == 2 and "non-finite" in summary["failed"][0]["reason"]


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        ("missing", "file not found"),
        ("corrupt", "corrupt"),
        ("mismatch", "does not fit the test_resnet architecture"),
        ("none", "needs weights"),
    ],
)
def test_weights_errors_exit_2_before_slides(workspace: Path, tmp_path: Path, setup: str, match: str) -> None:
    add_slide(workspace, "bad", corrupt=True)  # would fail with exit 3 if any slide were opened
    args = list(TINY)
    if setup == "missing":
        args += ["--weights", str(tmp_path / "nope.safetensors")]
    elif setup == "corrupt":
        path = tmp_path / "c.safetensors"
        path.write_bytes(os.urandom(64))
        args += ["--weights", str(path)]
    elif setup == "mismatch":
        args += ["--weights", str(save_random_weights(tmp_path / "vit.safetensors", "test_vit"))]
    result = _extract(workspace, *args)
    assert result.exit_code == 2, result.output
    assert match in result.stderr
    assert not _folder(workspace).exists()


def test_pretrained_offline_exit_2_fast(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(workspace / "empty-hf-home"))
    start = time.perf_counter()
    result = _extract(workspace, *TINY, "--pretrained")
    assert result.exit_code == 2 and "--weights" in result.stderr
    assert time.perf_counter() - start < 15


def test_input_errors(tmp_path: Path, weights_file: Path) -> None:
    no_tiles = _extract(tmp_path / "empty", *TINY, "--weights", str(weights_file))
    assert no_tiles.exit_code == 2 and "healnet tile" in no_tiles.stderr
    assert _extract(tmp_path, "--weights", str(weights_file)).exit_code == 2  # no --extractor
    bad_dtype = _extract(tmp_path, *TINY, "--weights", str(weights_file), "--dtype", "int8")
    assert bad_dtype.exit_code == 2 and "--dtype" in bad_dtype.stderr
    unknown = _extract(tmp_path, "-e", "resnet50trunc", "--random-init")
    assert unknown.exit_code == 2 and "did you mean resnet50-trunc" in unknown.stderr


def test_shards_cover_every_slide_once(workspace: Path, weights_file: Path) -> None:
    done = []
    for shard in ("0/2", "1/2"):
        result = _extract(workspace, *TINY, "--weights", str(weights_file), "--shard", shard, "--json")
        assert result.exit_code == 0
        done.append(json.loads(result.stdout)["counts"]["done"])
    assert sum(done) == 3 and min(done) >= 1
    assert (_folder(workspace) / "status-shard-1-of-2.csv").is_file()


def test_stain_texture_needs_no_weights(workspace: Path) -> None:
    result = _extract(workspace, "-e", "stain-texture", "--num-workers", "2", "--json")
    assert result.exit_code == 0, result.output
    bag = read_features(features_path(_folder(workspace, "stain-texture"), "s1"))
    assert bag.features.shape == (6, 63) and np.isfinite(bag.features.float().numpy()).all()
    assert bag.provenance["weights"] == {"source": "none"}


def test_list_and_help(tmp_path: Path) -> None:
    help_text = runner.invoke(build_app(), ["extract", "--help"])
    assert help_text.exit_code == 0 and "--weights" in help_text.stdout and "--random-init" in help_text.stdout
    result = runner.invoke(build_app(), ["extract", "--list"])
    assert result.exit_code == 0
    for name in (
        "resnet50-trunc",
        "uni2-h",
        "conch-v1.5",
        "virchow2",
        "h-optimus-1",
        "gigapath",
        "phikon-v2",
        "timm:/hf-hub:",
    ):
        assert name in result.stdout
    assert "huggingface-cli download paige-ai/Virchow2 pytorch_model.bin" in result.stdout
    as_json = json.loads(runner.invoke(build_app(), ["extract", "--list", "--json"]).stdout)
    assert {"name": "resnet50-trunc", "dim": 1024}.items() <= as_json["extractors"][0].items()
    virchow2 = next(row for row in as_json["extractors"] if row["name"] == "virchow2")
    assert virchow2 | {"get_weights": ""} == virchow2 | {
        "dim": 2560, "input_px": 224, "output": "cls+mean", "precision": "fp16", "train_mpp": 0.5, "gated": True,
        "licence": "CC-BY-NC-ND-4.0", "hub_repo": "paige-ai/Virchow2", "get_weights": "",
    }  # fmt: skip


def test_torchrun_ranks_pick_shards(workspace: Path, weights_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from healnet_cli.stages.extract.run import torchrun_rank

    assert torchrun_rank({"WORLD_SIZE": "1"}) is None
    assert torchrun_rank({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"}) == (2, 4, 0)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    result = _extract(workspace, *TINY, "--weights", str(weights_file), "--json")
    summary = json.loads(result.stdout)
    assert summary["shard"] == "1/2" and summary["counts"]["done"] == 1  # s2 of s1, s2, s3


def test_progress_counts_patches_and_slides(workspace: Path, weights_file: Path) -> None:
    """The log heartbeat (non-TTY) counts patches, so a few large slides still show progress."""
    import io

    from healnet_cli.core.console import Console
    from healnet_cli.stages.extract.config import ExtractConfig
    from healnet_cli.stages.extract.run import run_extract

    stream = io.StringIO()
    config = ExtractConfig(
        workdir=workspace, extractor="timm:test_resnet", weights=weights_file, device="cpu", batch_size=4, num_workers=0
    )
    assert run_extract(config, console=Console(stream=stream, log_every_s=0)).exit_code == 0
    lines = [line for line in stream.getvalue().splitlines() if line.startswith("extract: ") and "patches (" in line]
    assert lines[0].startswith("extract: 4/10 patches (") and lines[0].endswith("1/3 slides")  # s3 has 0 patches
    assert lines[-1].startswith("extract: 10/10 patches (") and lines[-1].endswith("3/3 slides")


def test_small_preset_end_to_end_random_init(workspace: Path) -> None:
    result = _extract(workspace, "-e", "vit-small", "--random-init", "--device", "cpu", "--num-workers", "0", "--json")
    assert result.exit_code == 0, result.output
    bag = read_features(features_path(_folder(workspace, "vit-small"), "s1"))
    assert bag.features.shape == (6, 384) and torch.isfinite(bag.features.float()).all()
    prov = bag.provenance
    assert prov["output"] == "cls" and prov["architecture"] == "vit_small_patch16_224" and prov["precision"] == "fp32"
    assert prov["weights"] == {"source": "random-init", "seed": 0} and prov["transform"]["input_px"] == 224
