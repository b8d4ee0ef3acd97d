"""Printing the cohort summary: a rich table on a terminal, plain aligned text otherwise."""

from __future__ import annotations

from typing import IO, Any


def _pattern_label(row: dict[str, Any]) -> str:
    return " + ".join(row["modalities"]) or "(labels only)"


def _mismatch_lines(summary: dict[str, Any]) -> list[str]:
    names = {
        "patients_with_data_but_no_labels": "patients with data but no labels",
        "labelled_patients_without_data": "labelled patients without data",
        "slides_without_labelled_patient": "slides whose patient has no labels",
    }
    lines = []
    for key, label in names.items():
        info = summary["mismatches"][key]
        if info["count"]:
            shown = ", ".join(info["examples"]) + (", ..." if info["count"] > len(info["examples"]) else "")
            lines.append(f"{label}: {info['count']} ({shown})")
    return lines


def render_plain(summary: dict[str, Any], out: IO[str]) -> None:
    """Aligned text for logs and pipes."""
    labels = summary["labels"]
    print(f"cohort in {summary['workdir']}: {summary['patients']} patients", file=out)
    if labels is None:
        print("labels: none (run `healnet omics labels`)", file=out)
    else:
        print(
            f"labels: {labels['patients']} patients, {labels['events']} events (time unit: {labels['time_unit']})",
            file=out,
        )
    width = max([len(n) for n in summary["modalities"]] + [8])
    print(f"{'modality':<{width}}  patients  labelled  events", file=out)
    for name, info in summary["modalities"].items():
        print(f"{name:<{width}}  {info['patients']:>8}  {info['labelled']:>8}  {info['events']:>6}", file=out)
    print("availability patterns (patients):", file=out)
    for row in summary["patterns"]:
        flag = "labelled" if row["labelled"] else "no labels"
        print(f"  {row['patients']:>6}  {_pattern_label(row)}  [{flag}]", file=out)
    for line in _mismatch_lines(summary):
        print(f"mismatch: {line}", file=out)
    for line in summary["unreadable_files"]:
        print(f"unreadable: {line}", file=out)


def render_rich(summary: dict[str, Any], out: IO[str]) -> None:
    """Rich tables for an interactive terminal."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out)
    labels = summary["labels"]
    caption = (
        "no labels (run `healnet omics labels`)"
        if labels is None
        else (f"labels: {labels['patients']} patients, {labels['events']} events ({labels['time_unit']})")
    )
    table = Table(title=f"cohort: {summary['patients']} patients", caption=caption)
    for column in ("modality", "patients", "labelled", "events"):
        table.add_column(column, justify="left" if column == "modality" else "right")
    for name, info in summary["modalities"].items():
        table.add_row(name, str(info["patients"]), str(info["labelled"]), str(info["events"]))
    console.print(table)
    patterns = Table(title="availability patterns")
    for column in ("patients", "modalities", "labels"):
        patterns.add_column(column, justify="right" if column == "patients" else "left")
    for row in summary["patterns"]:
        patterns.add_row(str(row["patients"]), _pattern_label(row), "yes" if row["labelled"] else "no")
    console.print(patterns)
    for line in _mismatch_lines(summary):
        console.print(f"[yellow]mismatch[/yellow]: {line}")
    for line in summary["unreadable_files"]:
        console.print(f"[red]unreadable[/red]: {line}")
