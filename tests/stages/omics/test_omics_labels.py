"""Label conversion (event / censor columns, words) and rejection with reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from healnet_cli.artifacts.omics import read_labels
from healnet_cli.cli import build_app
from healnet_cli.core.errors import InputError
from healnet_cli.stages.omics.config import LabelsConfig
from healnet_cli.stages.omics.labels import build_labels, parse_event, parse_time

runner = CliRunner()


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        (1, "event", True), (0, "event", False), ("1.0", "event", True), (True, "event", True), ("FALSE", "event", False),
        (1, "censor", False), (0, "censor", True), ("true", "censor", False),
        ("Dead", "event", True), ("alive", "event", False), ("dead", "censor", True), ("1:DECEASED", "event", True),
        ("0:LIVING", "censor", False),
    ],
)  # fmt: skip
def test_event_values(value, kind: str, expected: bool) -> None:
    assert parse_event(value, kind) == (expected, "")


@pytest.mark.parametrize("value", [2, "2", "unknown", "censored", -1])
def test_non_binary_events_are_rejected(value) -> None:
    event, reason = parse_event(value, "event")
    assert event is None and reason.startswith("non-binary event value")


@pytest.mark.parametrize(
    ("value", "reason"),
    [(None, "missing time"), ("", "missing time"), (float("nan"), "missing time"), ("-3", "negative time"),
     (0, "zero time"), ("abc", "non-numeric time 'abc'"), ("inf", "non-finite time 'inf'")],
)  # fmt: skip
def test_bad_times_are_rejected(value, reason: str) -> None:
    assert parse_time(value) == (None, reason)


def test_rejection_keeps_the_rest_and_lists_each_reason() -> None:
    patients = ["P1", "P2", "P3", "P4", "P5", "P6", "P7", "P7", "P8", "P8"]
    times = [10, None, -1, 0, 5, 7, 3, 3, 4, 6]
    events = [1, 0, 1, 1, "maybe", 0, 1, 1, 1, 1]
    result = build_labels(patients, times, events, kind="event")
    assert result.labels.index.tolist() == ["P1", "P6", "P7"]
    assert result.labels["event"].tolist() == [True, False, True]
    assert result.reasons == {"missing time": 1, "negative time": 1, "zero time": 1, "non-binary event value": 1, "conflicting rows": 1}
    assert {r["patient_id"] for r in result.rejected} == {"P2", "P3", "P4", "P5", "P8"}
    assert "5 label row(s) rejected" in result.warning()


def test_labels_config_needs_exactly_one_status_column() -> None:
    with pytest.raises(InputError, match="exactly one of --event-col"):
        LabelsConfig(time_col="t")
    with pytest.raises(InputError, match="exactly one of --event-col"):
        LabelsConfig(time_col="t", event_col="e", censor_col="c")


def test_labels_subcommand(tmp_path: Path) -> None:
    table = tmp_path / "clinical.tsv"
    table.write_text(
        "bcr_patient_barcode\tOS.time\tvital\nTCGA-AA-0001-01A\t100\tDead\nTCGA-AA-0002\t0\tAlive\nTCGA-AA-0003\t50\tAlive\n"
    )
    work = tmp_path / "w"
    args = ["omics", "labels", str(table), "--time-col", "os.time", "--event-col", "vital", "--time-unit", "days", "-w", str(work)]
    result = runner.invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    labels, meta = read_labels(work / "omics" / "labels.parquet")
    assert labels.index.tolist() == ["TCGA-AA-0001", "TCGA-AA-0003"] and labels["event"].tolist() == [True, False]
    assert meta["time_unit"] == "days"
    report = json.loads((work / "omics" / "labels_report.json").read_text())
    assert report["labels"]["rejected"][0]["reason"] == "zero time"
    assert "1 label row(s) rejected (zero time: 1)" in result.output
    again = runner.invoke(build_app(), [*args, "--json"])
    assert again.exit_code == 0 and '"skipped": 1' in again.stdout


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--time-col", "nope", "--event-col", "e"], "no column 'nope'"),
        (["--time-col", "t", "--event-col", "e", "--censor-col", "e"], "exactly one of"),
        (["--time-col", "t", "--event-col", "e", "--id-col", "pid"], "no identifier column 'pid'"),
    ],
)
def test_labels_subcommand_input_errors_exit_2(tmp_path: Path, extra: list[str], match: str) -> None:
    table = tmp_path / "c.csv"
    table.write_text("case_id,t,e\nP1,1,1\n")
    result = runner.invoke(build_app(), ["omics", "labels", str(table), *extra, "-w", str(tmp_path / "w")])
    assert result.exit_code == 2 and match in result.output


def test_every_row_rejected_is_an_input_error(tmp_path: Path) -> None:
    table = tmp_path / "c.csv"
    table.write_text("case_id,t,e\nP1,0,1\nP2,-1,1\n")
    result = runner.invoke(build_app(), ["omics", "labels", str(table), "--time-col", "t", "--event-col", "e", "-w", str(tmp_path / "w")])
    assert result.exit_code == 2 and "every label row was rejected" in result.output
