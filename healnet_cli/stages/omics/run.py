"""``healnet omics`` and ``healnet omics labels``: plan, build, write through the artifact store.

Items are the modality names (and ``labels``); each is cached on the options and the combined
fingerprint of every input table, so a rerun with the same tables and options reads nothing but
the tables' first lines. ``omics/report.json`` (``omics/labels_report.json`` for the labels
sub-command) records what was read, coerced, collapsed, dropped and rejected.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from healnet_cli.artifacts.omics import LABELS_NAME, modality_path, write_labels, write_modality
from healnet_cli.artifacts.patients import to_patient_id
from healnet_cli.core import atomic
from healnet_cli.core.console import Console
from healnet_cli.core.errors import InputError, ItemError
from healnet_cli.core.fingerprint import combine, file_fingerprint
from healnet_cli.core.runner import ItemResult, WorkItem, run_items
from healnet_cli.core.status import StatusTable
from healnet_cli.core.store import ArtifactStore, ItemRecord
from healnet_cli.core.workspace import Workspace
from healnet_cli.stages.omics import clinical
from healnet_cli.stages.omics.build import Built, build, plan_table
from healnet_cli.stages.omics.config import LabelsConfig, OmicsConfig
from healnet_cli.stages.omics.identifiers import ROWS, detect_layout
from healnet_cli.stages.omics.labels import LabelResult, build_labels
from healnet_cli.stages.omics.tables import TableHead, read_full, read_head

REPORT = "report.json"
#: The two commands that write ``labels.parquet``; the labels manifest's ``stage`` names its owner.
OMICS_STAGE, LABELS_STAGE = "omics", "omics-labels"
LABELS_REPORT = "labels_report.json"
#: Bump when the code changes what `healnet omics` writes for the same inputs and options (parsing,
#: orientation, cleaning, filtering rules; the labels it finds): recomputes cached modalities.
ALGORITHM_VERSION = 1
#: The same for `healnet omics labels` (id, time and event parsing rules).
LABELS_ALGORITHM_VERSION = 1


def run_omics(
    config: OmicsConfig,
    *,
    workspace: Workspace,
    console: Console,
    force: bool = False,
    on_error: str = "continue",
    debug: bool = False,
) -> StatusTable:
    """Turn ``config.tables`` into ``omics/<modality>.parquet`` (+ ``labels.parquet``).

    Raises
    ------
    InputError
        Before any work, for a missing, empty, malformed or ambiguous table.
    """
    if not config.tables:
        raise InputError("no TABLE given; pass one or more omics tables (CSV, TSV, TXT, .gz, .zip, Parquet)")
    jobs = [plan_table(spec, config) for spec in config.tables]
    clinical.check_names(config.clinical_request, {str(j.head.path): j.clinical_candidates for j in jobs})
    names = sorted({name for job in jobs for name in job.modality_names})
    if any(job.labels is not None for job in jobs):
        names.append(LABELS_NAME)
    if not names:
        raise InputError(
            f"no feature or label columns found in {', '.join(str(j.head.path) for j in jobs)}; check the tables"
        )
    fingerprints = {str(job.head.path): file_fingerprint(job.head.path) for job in jobs}
    combined = combine(fingerprints[str(job.head.path)] for job in jobs)
    folder = workspace.omics_dir
    store = ArtifactStore(folder, OMICS_STAGE, config.params(), algorithm=ALGORITHM_VERSION)
    owner = labels_owner(store)
    kept_labels = ""
    if LABELS_NAME in names and owner is not None and owner.stage == LABELS_STAGE:
        names.remove(LABELS_NAME)  # one owner per artifact: `healnet omics labels` wrote them, it keeps them
        kept_labels = (
            f"omics/labels.parquet belongs to `healnet omics labels` ({describe_labels(owner)}); the tables' survival "
            f"columns are not used. Remove {folder / (LABELS_NAME + '.parquet')} to build the labels from the tables"
        )
    items = [WorkItem(name, name, combined) for name in names]
    for job in jobs:
        _decimal_message(job.head, console)
    built = None
    if force or not all(store.is_fresh(item.id, item.fingerprint) for item in items):
        console.info(f"omics: reading {len(jobs)} table(s)")
        built = build(jobs, config, fingerprints)  # a malformed table raises InputError here, before any write
    status = StatusTable(stage="omics")
    if kept_labels:
        status.add(LABELS_NAME, "skipped", reason="kept: written by `healnet omics labels`", warning=kept_labels)
        console.warn(f"{LABELS_NAME}: {kept_labels}")
        if built is not None:
            built.report["labels_not_written"] = kept_labels
    run_items(items, _processor(folder, built), store=store, status=status, console=console,
              force=force, on_error=on_error, debug=debug, description="omics")  # type: ignore[arg-type]  # fmt: skip
    if built is not None:
        report = {**built.report, "status": status.summary()}
        atomic.write_json(folder / REPORT, report)
        _summarise(report, console, folder / REPORT)
    return status


def _processor(folder: Path, built: Built | None) -> Callable[[WorkItem], ItemResult]:
    def process(item: WorkItem) -> ItemResult:
        if built is None:  # an item went stale between the check and its turn (another job rewrote it)
            raise ItemError("its output changed while this run was starting; rerun the command")
        if item.id in built.errors:
            raise ItemError(built.errors[item.id])
        if item.id == LABELS_NAME:
            if built.labels is None:  # pragma: no cover - build() records an error instead
                raise ItemError("no labels were built")
            path = write_labels(folder / f"{LABELS_NAME}.parquet", built.labels.labels, built.label_meta)
            source = ", ".join(s["path"] for s in built.label_meta["sources"])
            counts = {**_label_counts(built.labels), "source": source, "time_unit": built.label_meta["time_unit"]}
            return ItemResult([path], meta=counts, warning=built.labels.warning())
        frame = built.frames[item.id]
        path = write_modality(modality_path(folder, item.id), frame, built.meta[item.id])
        meta: dict[str, Any] = {"n_patients": len(frame), "n_features": frame.shape[1]}
        if (
            "clinical_columns" in built.meta[item.id]
        ):  # which columns became covariates, and which not (why: report.json)
            selections = built.meta[item.id]["clinical_columns"]
            meta["clinical_columns"] = {"kept": [k["column"] for s in selections for k in s["kept"]],
                                        "dropped": [d["column"] for s in selections for d in s["dropped"]]}  # fmt: skip
        return ItemResult([path], meta=meta, warning=_warning(built, item.id))

    return process


def _warning(built: Built, name: str) -> str:
    """Non-numeric cells and conflicting duplicates of one modality, summed over the inputs."""
    cells, aggregated, examples = 0, 0, []
    for note in built.report.get("inputs", []):
        detail = note.get("modalities", {}).get(name)
        if detail is None:
            continue
        cells += detail["non_numeric"]["cells"]
        examples += detail["non_numeric"]["examples"]
        aggregated += detail["duplicates"]["conflicting_rows_aggregated"]
    parts = []
    if cells:
        parts.append(f"{cells} non-numeric cell(s) set to missing (e.g. {', '.join(examples[:3])})")
    if aggregated:
        parts.append(f"{aggregated} patient(s) with conflicting rows aggregated")
    return "; ".join(parts) + ("; see omics/report.json" if parts else "")


def _decimal_message(head: TableHead, console: Console) -> None:
    if head.decimal != ".":
        console.info(f"{head.path}: numbers are written with decimal commas ('12,5'); read as decimals")
    if head.decimal_note:
        console.warn(f"{head.path}: {head.decimal_note}")


def labels_owner(store: ArtifactStore) -> ItemRecord | None:
    """The manifest of the committed ``labels.parquet`` (its ``stage`` says which command wrote
    it), or None when there are no labels."""
    record = store.read_record(LABELS_NAME)
    if record is None or not (store.folder / f"{LABELS_NAME}.parquet").is_file():
        return None
    return record


def describe_labels(record: ItemRecord) -> str:
    """``from clinical.tsv, days, 300 patients`` (what a labels manifest says)."""
    meta = record.meta
    parts = [f"from {meta['source']}" if meta.get("source") else "from an earlier run"]
    if meta.get("time_unit"):
        parts.append(str(meta["time_unit"]))
    if "n_patients" in meta:
        parts.append(f"{meta['n_patients']} patients")
    return ", ".join(parts)


def _label_counts(result: LabelResult) -> dict[str, Any]:
    return {"n_patients": len(result.labels), "n_events": int(result.labels["event"].sum())}


def _summarise(report: dict[str, Any], console: Console, path: Path) -> None:
    for name, info in sorted(report.get("modalities", {}).items()):
        dropped = info["dropped"]
        console.info(
            f"  {name}: {info['patients']} patients × {info['features']} features "
            f"(dropped {dropped['all_missing']['count']} all-missing, {dropped['constant']['count']} constant)"
        )
    for selection in report.get("clinical_columns", []):
        console.info(f"  clinical columns of {Path(selection['path']).name}: {clinical.summary(selection)}")
        if selection["requested"] not in (clinical.DEFAULT_REQUEST, clinical.ALL) and selection["roles_not_found"]:
            console.warn(
                f"{selection['path']}: --clinical-columns asked for {', '.join(selection['roles_not_found'])}, "
                "which the table has no column for; see clinical_columns in omics/report.json"
            )
    labels = report.get("labels")
    if labels:
        console.info(
            f"  labels: {labels['patients']} patients, {labels['events']} events, {labels['rejected_rows']} row(s) "
            "rejected"
        )
    console.info(f"omics: report {path}")


def _column(columns: list[str], name: str, path: Path, option: str) -> str:
    if name in columns:
        return name
    lowered = {c.lower(): c for c in columns}
    if name.lower() in lowered:
        return lowered[name.lower()]
    shown = ", ".join(repr(c) for c in columns[:10] if c) + (", ..." if len(columns) > 10 else "")
    raise InputError(f"{path}: no column {name!r} (columns: {shown}); pass {option} with one of them")


def run_labels(
    table: Path,
    config: LabelsConfig,
    *,
    workspace: Workspace,
    console: Console,
    force: bool = False,
    debug: bool = False,
) -> StatusTable:
    """Turn one clinical table into ``omics/labels.parquet``.

    Raises
    ------
    InputError
        Before any work, for a bad table or column; also when every row is rejected.
    """
    head = read_head(table)
    layout = detect_layout(head, orientation=ROWS, id_col=config.id_col)
    time_col = _column(head.columns, config.time_col, head.path, "--time-col")
    status_col = _column(head.columns, config.status_col, head.path, f"--{config.kind}-col")
    fingerprint = file_fingerprint(head.path)
    columns = list(dict.fromkeys([layout.id_column, time_col, status_col]))
    frame = read_full(head, string_columns=columns, only=columns)
    ids = [("" if v is None else str(v).strip()) for v in frame.column(layout.id_column).to_pylist()]
    times, statuses = head.decimal_text(frame.column(time_col).to_pylist()), frame.column(status_col).to_pylist()
    rows = [(to_patient_id(i), t, s) for i, t, s in zip(ids, times, statuses, strict=True) if i]
    result = build_labels([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], kind=config.kind)
    if len(result.labels) == 0:
        raise InputError(
            f"{head.path}: every label row was rejected ({result.warning()}); check --time-col / --{config.kind}-col"
        )
    folder = workspace.omics_dir
    store = ArtifactStore(folder, LABELS_STAGE, config.params(), algorithm=LABELS_ALGORITHM_VERSION)
    owner = labels_owner(store)
    if owner is not None and owner.stage == OMICS_STAGE and not force:
        raise InputError(
            f"{folder / (LABELS_NAME + '.parquet')}: holds the labels `healnet omics` built "
            f"({describe_labels(owner)}); pass --force "
            f"to replace them with the labels of {head.path} ({config.time_unit}) — `healnet omics` then leaves them "
            "alone"
        )
    _decimal_message(head, console)
    meta = {"time_unit": config.time_unit, "sources": [{"path": str(head.path), "fingerprint": fingerprint}]}

    def process(item: WorkItem) -> ItemResult:
        path = write_labels(folder / f"{LABELS_NAME}.parquet", result.labels, meta)
        record_meta = {**_label_counts(result), "source": str(head.path), "time_unit": config.time_unit}
        return ItemResult([path], meta=record_meta, warning=result.warning())

    status = StatusTable(stage="omics labels")
    run_items([WorkItem(LABELS_NAME, head.path, fingerprint)], process, store=store, status=status,
              console=console, force=force, debug=debug, description="labels")  # fmt: skip
    report = {
        "input": {
            "path": str(head.path),
            "id_column": layout.id_column,
            "time_column": time_col,
            f"{config.kind}_column": status_col,
            "rows": frame.num_rows,
            "rows_without_identifier": len(ids) - len(rows),
        },
        "labels": {**result.as_dict(), "time_unit": config.time_unit},
        "status": status.summary(),
    }
    atomic.write_json(folder / LABELS_REPORT, report)
    console.info(f"  labels: {len(result.labels)} patients, {int(result.labels['event'].sum())} events, "
                 f"{sum(result.reasons.values())} row(s) rejected; report {folder / LABELS_REPORT}")  # fmt: skip
    return status
