"""Weights files: safe reading, wrappers, strict fitting, clear errors; --pretrained offline."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import timm
import torch

from healnet_cli.core.errors import InputError
from healnet_cli.extractors import load_extractor, read_state_dict
from healnet_cli.extractors.build import TruncatedResNet
from healnet_cli.extractors.weights import fit_state_dict


def _state(name: str = "test_resnet") -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return timm.create_model(name, num_classes=0).state_dict()


@pytest.mark.parametrize("wrapper", [None, "state_dict", "model"])
def test_wrappers_and_prefixes_unwrapped(tmp_path: Path, wrapper: str | None) -> None:
    state = {f"module.{k}": v for k, v in _state().items()}
    payload = state if wrapper is None else {wrapper: state, "epoch": 3}
    path = tmp_path / "w.pth"
    torch.save(payload, path)
    loaded = read_state_dict(path)
    assert set(loaded) == set(_state())


def test_file_weights_load_and_record_sha(tmp_path: Path) -> None:
    from healnet_cli.core.fingerprint import sha256_file

    path = tmp_path / "w.bin"
    torch.save(_state(), path)
    ext = load_extractor("timm:test_resnet", weights=path)
    assert ext.weights.source == "file" and ext.weights.file == "w.bin"
    assert ext.weights.sha256 == sha256_file(path)
    for k, v in _state().items():
        assert torch.equal(ext.model.state_dict()[k], v)


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("missing.safetensors", None, "file not found"),
        ("w.onnx", b"x", "unsupported extension"),
        ("w.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json", "corrupt"),
        ("w.pt", b"PK\x03\x04 truncated zip", "corrupt"),
    ],
)
def test_bad_files(tmp_path: Path, name: str, content: bytes | None, match: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=match) as info:
        read_state_dict(path)
    assert str(path) in str(info.value)


def test_pickled_objects_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model": Path("/etc/passwd")}, path)  # not loadable with weights_only=True
    with pytest.raises(InputError, match="pickled objects"):
        read_state_dict(path)


def test_mismatched_architecture_names_file(tmp_path: Path) -> None:
    path = tmp_path / "vit.pt"
    torch.save(_state("test_vit"), path)
    with pytest.raises(InputError, match=r"vit\.pt: does not fit the test_resnet architecture: .*missing.*unexpected"):
        load_extractor("timm:test_resnet", weights=path)


def test_shape_mismatch_reported(tmp_path: Path) -> None:
    state = _state()
    key = next(k for k, v in state.items() if v.ndim == 4)
    state[key] = torch.zeros(1, 1, 1, 1)
    model = timm.create_model("test_resnet", num_classes=0)
    with pytest.raises(InputError, match=f"shape mismatches .*{key}: file \\(1, 1, 1, 1\\)"):
        fit_state_dict(model, state, path="w.pt", arch="test_resnet")


def test_classifier_keys_in_file_are_ignored(tmp_path: Path) -> None:
    torch.manual_seed(0)
    state = timm.create_model("test_resnet", num_classes=10).state_dict()  # with a head
    path = tmp_path / "with_head.safetensors"
    from safetensors.torch import save_file

    save_file(state, str(path))
    assert load_extractor("timm:test_resnet", weights=path).dim == 96


def test_pretrained_offline_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    start = time.perf_counter()
    with pytest.raises(InputError, match="--weights FILE"):
        load_extractor("timm:test_resnet", pretrained=True)
    assert time.perf_counter() - start < 10


def test_resnet50_trunc_matches_layer3_features(tmp_path: Path) -> None:
    """resnet50-trunc = timm resnet50 features_only layer3, average pooled (CLAM), 1024-d; a full
    ResNet50 state dict (with layer4 and fc) loads."""
    torch.manual_seed(0)
    full = timm.create_model("resnet50", num_classes=1000).eval()
    path = tmp_path / "r50.pth"
    torch.save({"state_dict": full.state_dict()}, path)
    ext = load_extractor("resnet50-trunc", weights=path)
    assert isinstance(ext.model, TruncatedResNet) and ext.dim == 1024
    ext.prepare(torch.device("cpu"), None)
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    ours = ext.encode(images)
    reference = timm.create_model("resnet50", features_only=True, out_indices=(3,)).eval()
    reference.load_state_dict({k: v for k, v in full.state_dict().items() if not k.startswith(("fc.", "layer4."))})
    with torch.inference_mode():
        expected = reference(ext.transform.normalize(images))[0].mean(dim=(2, 3))
    assert ours.shape == (2, 1024)
    assert (ours - expected).abs().max() < 1e-4


def test_pretrained_from_local_hub_cache_offline(tmp_path: Path) -> None:
    """--pretrained works offline when the weights are in the Hugging Face cache (recorded as hub)."""
    import json
    import os
    import subprocess
    import sys

    from safetensors.torch import save_file

    snapshot = tmp_path / "hub" / "models--timm--test_resnet.r160_in1k" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (tmp_path / "hub" / "models--timm--test_resnet.r160_in1k" / "refs").mkdir()
    (tmp_path / "hub" / "models--timm--test_resnet.r160_in1k" / "refs" / "main").write_text("abc123")
    save_file({k: v.contiguous() for k, v in _state().items()}, str(snapshot / "model.safetensors"))
    code = (
        "import json; from healnet_cli.extractors import load_extractor; "
        "e = load_extractor('timm:test_resnet', pretrained=True); print(json.dumps(e.weights.as_dict()))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    weights = json.loads(out.stdout.strip().splitlines()[-1])
    assert (
        weights["source"] == "hub" and weights["tag"] == "timm/test_resnet.r160_in1k" and len(weights["sha256"]) == 64
    )


def test_pretrained_preset_offline_names_its_hub_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", "/nonexistent-hf-cache")
    with pytest.raises(
        InputError, match=r"huggingface-cli download MahmoodLab/UNI2-h pytorch_model.bin.*--weights FILE"
    ):
        load_extractor("uni2-h", pretrained=True)


def test_hf_hub_config_missing_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", "/nonexistent-hf-cache")
    with pytest.raises(
        InputError,
        match=(
            r"model config of paige-ai/Virchow2 is not in the local hub cache.*huggingface-cli download "
            r"paige-ai/Virchow2 config.json"
        ),
    ):
        load_extractor("hf-hub:paige-ai/Virchow2", random_init=True)


def test_phikon_v2_half_converted_file_is_reported() -> None:
    """A file in neither layout (timm blocks renamed halfway) is reported key by key, never loaded
    loosely (the full Hugging Face layout is checked in test_extractor_presets)."""
    from healnet_cli.extractors import spec_for
    from healnet_cli.extractors.backbones import build_backbone
    from healnet_cli.extractors.build import fit_weights

    spec = spec_for("phikon-v2")
    with torch.device("meta"):
        backbone, full = build_backbone(spec)
    state = {k.replace("blocks.", "encoder.layer.", 1): v for k, v in backbone.state_dict().items()}
    with pytest.raises(InputError, match="does not fit"):  # half-converted names are reported, not loaded
        fit_weights(spec, backbone, full, state, path="model.safetensors")


def test_hf_hub_name_builds_from_the_cached_config(tmp_path: Path) -> None:
    """hf-hub:<org>/<repo> reads timm's config.json from the hub cache (offline), merges --encoder-arg."""
    import json
    import os
    import subprocess
    import sys

    repo = tmp_path / "hub" / "models--lab--tiny-vit"
    (repo / "snapshots" / "abc").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc")
    config = {
        "architecture": "test_vit",
        "num_classes": 0,
        "model_args": {"img_size": 96},
        "pretrained_cfg": {
            "input_size": [3, 96, 96],
            "mean": [0.1, 0.2, 0.3],
            "std": [0.5, 0.5, 0.5],
            "interpolation": "bicubic",
        },
    }
    (repo / "snapshots" / "abc" / "config.json").write_text(json.dumps(config))
    code = (
        "import json; from healnet_cli.extractors import load_extractor; "
        "e = load_extractor('hf-hub:lab/tiny-vit', random_init=True, encoder_args=['output=cls+mean']); "
        "print(json.dumps([e.dim, e.architecture, e.transform.as_dict(), e.provenance()['encoder_args']]))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    dim, arch, transform, args = json.loads(out.stdout.strip().splitlines()[-1])
    assert dim == 128 and arch == "test_vit" and args == {"output": "cls+mean"}
    assert (
        transform["input_px"] == 96 and transform["mean"] == [0.1, 0.2, 0.3] and transform["interpolation"] == "bicubic"
    )
