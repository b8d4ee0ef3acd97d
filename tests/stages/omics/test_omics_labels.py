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
        (1, "event", True),
        (0, "event", False),
        ("1.0", "event", True),
        (True, "event", True),
        ("FALSE", "event", False),
        (1, "censor", False),
        (0, "censor", True),
        ("true", "censor", False),
        ("Dead", "event", True),
        ("alive", "event", False),
        ("dead", "censor", True),
        ("1:DECEASED", "event", True),
        ("0:LIVING", "censor", False),
    ],
)
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
    assert result.reasons == {
        "missing time": 1,
        "negative time": 1,
        "zero time": 1,
        "non-binary event value": 1,
        "conflicting rows": 1,
    }
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
    args = [
        "omics",
        "labels",
        str(table),
        "--time-col",
        "os.time",
        "--event-col",
        "vital",
        "--time-unit",
        "days",
        "-w",
        str(work),
    ]
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
    result = runner.invoke(
        build_app(), ["omics", "labels", str(table), "--time-col", "t", "--event-col", "e", "-w", str(tmp_path / "w")]
    )
    assert result.exit_code == 2 and "every label row was rejected" in result.output


@pytest.mark.parametrize(
    ("options", "match"),
    [({"event_col": "censorship"}, "--event-col 'censorship': the name says censoring"),
     ({"event_col": "Is_Censored"}, "--event-col 'Is_Censored'"),
     ({"censor_col": "OS"}, "--censor-col 'OS': the name says event"),
     ({"censor_col": "dss_event"}, "--censor-col 'dss_event'")],
)  # fmt: skip
def test_status_column_named_the_opposite_is_refused(options: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        LabelsConfig(time_col="t", **options)
    LabelsConfig(time_col="t", status_as_is=True, **options)  # confirmed: read as the option says


@pytest.mark.parametrize(
    "options",
    [{"event_col": "OS"}, {"event_col": "vital_status"}, {"censor_col": "censorship"}, {"event_col": "status"}],
)
def test_status_columns_named_as_the_option_pass(options: dict) -> None:
    LabelsConfig(time_col="t", **options)


def test_status_as_is_reads_the_column_as_the_option_says(tmp_path: Path) -> None:
    table = tmp_path / "c.csv"
    table.write_text("case_id,t,censored\nP1,3,1\nP2,5,0\n")  # an export whose "censored" column holds 1 = death
    args = ["omics", "labels", str(table), "--time-col", "t", "--event-col", "censored", "-w", str(tmp_path / "w")]
    assert runner.invoke(build_app(), args).exit_code == 2
    result = runner.invoke(build_app(), [*args, "--status-as-is"])
    assert result.exit_code == 0, result.output
    assert read_labels(tmp_path / "w" / "omics" / "labels.parquet")[0]["event"].tolist() == [True, False]


def test_no_events_warns_with_the_counts() -> None:
    result = build_labels(["P1", "P2"], [3, 4], [0, 0], kind="event")
    assert "no events: 0 events, 2 censored among 2 patients" in result.warning()
    assert build_labels(["P1", "P2"], [3, 4], [1, 0], kind="event").warning() == ""


def test_labels_have_one_owner(tmp_path: Path) -> None:
    """`omics TABLE` and `omics labels` no longer overwrite each other's labels (months ↔ days)."""
    from omics_factory import wide_frame

    study = tmp_path / "s_all_clean.csv"
    wide_frame(6).to_csv(study)
    clinical = tmp_path / "clinical.tsv"
    clinical.write_text("case_id\tOS.time\tOS\n" + "".join(f"TCGA-AA-{i:04d}\t{100 * (i + 1)}\t1\n" for i in range(6)))
    work = tmp_path / "w"
    labels_path = work / "omics" / "labels.parquet"
    omics = ["omics", str(study), "-w", str(work)]
    labels = [
        "omics",
        "labels",
        str(clinical),
        "--time-col",
        "OS.time",
        "--event-col",
        "OS",
        "--time-unit",
        "days",
        "-w",
        str(work),
    ]
    assert runner.invoke(build_app(), omics).exit_code == 0
    refused = runner.invoke(build_app(), labels)
    assert refused.exit_code == 2 and "holds the labels `healnet omics` built" in refused.output
    assert read_labels(labels_path)[1]["time_unit"] == "months"
    assert runner.invoke(build_app(), [*labels, "--force"]).exit_code == 0
    for extra in ([], ["--force"], ["--sample-type", "all"]):  # a rerun, a forced one, new parameters: the labels stay
        again = runner.invoke(build_app(), [*omics, *extra, "--json"])
        assert again.exit_code == 0 and "belongs to `healnet omics labels`" in again.output
        assert read_labels(labels_path)[1]["time_unit"] == "days"
    assert runner.invoke(build_app(), labels).exit_code == 0  # its own labels: a rerun is fine
    labels_path.unlink()  # handing the labels back to the tables
    assert runner.invoke(build_app(), omics).exit_code == 0
    assert read_labels(labels_path)[1]["time_unit"] == "months"
