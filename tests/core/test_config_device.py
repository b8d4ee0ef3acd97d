from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from healnet_cli.core.config import command_section, read_config_file, write_resolved_config
from healnet_cli.core.device import resolve_device, resolve_precision
from healnet_cli.core.errors import InputError


def test_sections_and_key_normalisation(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tile:\n  patch-size: 512\n  mpp: 0.25\nomics:\n  labels:\n    time-col: os\n")
    data = read_config_file(cfg)
    assert command_section(data, ["tile"]) == {"patch_size": 512, "mpp": 0.25}
    assert command_section(data, ["omics", "labels"]) == {"time_col": "os"}
    assert command_section(data, ["train"]) == {}


def test_unsafe_yaml_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "evil.yaml"
    cfg.write_text("tile: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(InputError, match="invalid YAML"):
        read_config_file(cfg)


@pytest.mark.parametrize("text,match", [("- a\n- b\n", "mapping"), ("tile: [1\n", "invalid YAML")])
def test_malformed_config_files(tmp_path: Path, text: str, match: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(InputError, match=match):
        read_config_file(cfg)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot be read"):
        read_config_file(tmp_path / "nope.yaml")


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    path = write_resolved_config(tmp_path, {"workdir": tmp_path, "mpp": 0.5}, command="tile", sources={"mpp": "cli"})
    data = yaml.safe_load(path.read_text())
    assert data["options"] == {"workdir": str(tmp_path), "mpp": 0.5}
    assert data["sources"] == {"mpp": "cli"}


def test_device_and_precision_on_cpu() -> None:
    import torch

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    assert resolve_precision("auto", torch.device("cpu")) is None
    assert resolve_precision("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(InputError, match="not one of"):
        resolve_device("tpu")
    with pytest.raises(InputError, match="not one of"):
        resolve_precision("fp8", torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            resolve_device("cuda:0")
        with pytest.raises(InputError, match="needs a CUDA"):
            resolve_precision("fp16", torch.device("cpu"))


def test_sub_command_sections_are_not_options(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("omics:\n  log1p: true\n  labels:\n    time-col: os\n")
    data = read_config_file(cfg)
    assert command_section(data, ["omics"]) == {"log1p": True}
    assert command_section(data, ["omics", "labels"]) == {"time_col": "os"}
