"""Run ``healnet import-features``: find the source's slides, settle the encoder and dimension of
the import, then convert each slide (cached, locked, committed like every stage).

The import's encoder is ``--encoder`` or the name most of the files record; its dimension is the
preset's, else the one most of the files have. A slide recording another encoder or having another
dimension fails with the reason, as do unreadable files, row counts that differ between features and
coordinates, and non-finite features; the other slides go on (exit 3).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from healnet_cli.artifacts.features import check_folder_identity, encoder_identity, features_path, write_features
from healnet_cli.core.console import Console
from healnet_cli.core.errors import InputError, ItemError
from healnet_cli.core.fingerprint import combine, file_fingerprint
from healnet_cli.core.hpc import parse_shard
from healnet_cli.core.runner import ItemResult, WorkItem, report, run_items
from healnet_cli.core.status import StatusTable
from healnet_cli.core.store import ArtifactStore
from healnet_cli.core.workspace import Workspace
from healnet_cli.stages.import_features.config import ImportConfig
from healnet_cli.stages.import_features.formats import PRESET_NAMES, reader
from healnet_cli.stages.import_features.formats.common import ImportContext, ImportedBag, SourceSlide
from healnet_cli.stages.import_features.slides import SlideTable, read_slide_table

SCHEMA_PARAMS = "healnet.import/1"
#: Bump when the code changes a slide's imported features for the same inputs and options
#: (conversion, coordinate scaling): recomputes cached slides.
ALGORITHM_VERSION = 1


@dataclass
class ImportPlan:
    """The encoder and dimension every slide of the import must have."""

    encoder: str  # the name recorded as ``extractor`` (a preset name where the output is the same)
    source_encoder: str | None  # as the source tool names it
    dim: int | None
    notes: list[str] = field(default_factory=list)

    def identity(self, tool: str) -> str:
        return encoder_identity({"extractor": self.encoder, "weights": self.weights(tool)})

    def weights(self, tool: str) -> dict[str, Any]:
        return {"source": "imported", "tool": tool, "encoder": self.source_encoder or self.encoder}


@dataclass
class ImportResult:
    """Outcome of a run: exit code, status table, output folder."""

    exit_code: int
    status: StatusTable
    folder: Path


def run_import(config: ImportConfig, *, console: Console, debug: bool = False) -> ImportResult:
    """Import every slide of the shard.

    Raises
    ------
    InputError
        Bad options, no files of the format, no encoder name where the files record none, a
        features folder holding other features (without ``--force``): all before any slide is written.
    """
    config.validate()
    shard = parse_shard(config.shard)
    table = read_slide_table(config.slides_csv)
    fmt = reader(config.format)
    slides = fmt.discover(config.source, config.coords_dir)
    plan = plan_import(config, [fmt.header(s) for s in slides])
    for note in plan.notes:
        console.warn(note)
    folder = Workspace.at(config.workdir).features_dir(config.name or plan.encoder)
    check_folder_identity(folder, plan.identity(config.format), force=config.force)
    params = {
        "schema": SCHEMA_PARAMS,
        "format": config.format,
        "encoder": plan.encoder,
        "source_encoder": plan.source_encoder,
        "dtype": config.dtype,
        "mpp": config.mpp,
        "patch_size": config.patch_size,
    }
    store = ArtifactStore(folder, "import", params, algorithm=ALGORITHM_VERSION)
    status = StatusTable("import", shard=str(shard))
    ctx = ImportContext(
        slide_mpp=dict(table.mpp), default_slide_mpp=config.slide_mpp, mpp=config.mpp, patch_px=config.patch_size
    )
    items = shard.select([_item(s, table, ctx) for s in slides], key=lambda item: item.id)
    console.info(
        f"import: {config.format} {plan.source_encoder or '?'} as {plan.encoder} ({plan.dim or '?'}-d); "
        f"{len(items)} of {len(slides)} slide(s) in shard {shard} -> {folder}"
    )
    unknown_mpp: list[str] = []
    converter = SlideConverter(config, plan, ctx, table, unknown_mpp)
    run_items(
        items,
        lambda item: converter.convert(item, features_path(folder, item.id)),
        store=store,
        status=status,
        console=console,
        force=config.force,
        on_error=config.on_error,  # type: ignore[arg-type]
        debug=debug,
        description="import",
    )
    if unknown_mpp:
        console.warn(
            f"{len(unknown_mpp)} slide(s) without a patch resolution (patch_mpp null), e.g. {unknown_mpp[0]}: "
            "pass --mpp (or the slides' mpp with --slides-csv / --slide-mpp) so that predictions can check it"
        )
    return ImportResult(report(status, console, folder=folder), status, folder)


def plan_import(config: ImportConfig, headers: list) -> ImportPlan:
    """Settle the import's encoder name and dimension from ``--encoder`` and the files' headers.

    Raises
    ------
    InputError
        No ``--encoder`` and no file records one.
    """
    recorded = Counter(h.encoder for h in headers if h.encoder)
    source_encoder = min(recorded, key=lambda name: (-recorded[name], name)) if recorded else None
    notes = []
    if not config.encoder and source_encoder is None:
        raise InputError(
            f"{config.source}: {config.format} files do not record the encoder; pass --encoder NAME "
            "(a preset such as uni or resnet50-trunc, see `healnet extract --list`, or the name you used)"
        )
    if config.encoder:
        encoder = preset_name(config.encoder, config.format)
    else:
        assert source_encoder is not None, "no --encoder and no recorded encoder is refused above"
        encoder = preset_name(source_encoder, config.format, namespace=True)
    if config.encoder and source_encoder and preset_name(source_encoder, config.format, namespace=True) != encoder:
        notes.append(f"the files record encoder {source_encoder!r}; --encoder {config.encoder} names them {encoder}")
    dim = _preset_dim(encoder)
    if dim is None:
        dims = Counter(
            h.dim for h in headers if h.dim and (source_encoder is None or h.encoder in (None, source_encoder))
        )
        dim = min(dims, key=lambda d: (-dims[d], d)) if dims else None
    return ImportPlan(encoder, source_encoder or config.encoder, dim, notes)


def preset_name(name: str, tool: str, *, namespace: bool = False) -> str:
    """The healnet preset computing what ``tool`` calls ``name``; else ``name`` itself: a preset name
    given with ``--encoder`` is taken at its word, a name read from the files becomes
    ``<tool>:<name>`` (STAMP's ``virchow2`` is not the ``virchow2`` preset's output)."""
    mapped = PRESET_NAMES.get(tool, {}).get(name)
    if mapped is not None:
        return mapped
    if namespace:
        return f"{tool}:{name}"
    return name


def _preset_dim(name: str) -> int | None:
    from healnet_cli.extractors import PRESETS, spec_for

    return spec_for(name).dim if name in PRESETS else None


def _item(slide: SourceSlide, table: SlideTable, ctx: ImportContext) -> WorkItem:
    parts = [file_fingerprint(slide.features_file)]
    if slide.coords_file is not None and slide.coords_file.is_file():
        parts.append(file_fingerprint(slide.coords_file))
    parts += [f"case_id={table.case_of(slide.slide_id)}", f"slide_mpp={ctx.mpp_of(slide.slide_id)}"]
    return WorkItem(id=slide.slide_id, source=slide, fingerprint=combine(parts))


@dataclass
class SlideConverter:
    """Reads one source slide, checks it against the plan and writes its features file."""

    config: ImportConfig
    plan: ImportPlan
    ctx: ImportContext
    table: SlideTable
    unknown_mpp: list[str]

    def convert(self, item: WorkItem, path: Path) -> ItemResult:
        slide: SourceSlide = item.source
        bag = reader(self.config.format).read(slide, self.ctx)
        features = self._checked(bag, slide)
        import torch

        dtype = torch.float16 if self.config.dtype == "float16" else torch.float32
        out = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).to(dtype)
        if not torch.isfinite(out).all():
            raise ItemError(
                f"{slide.features_file}: features overflow {self.config.dtype} (max |x| = "
                f"{np.abs(features).max():.3g}); rerun with --dtype float32"
            )
        coords = torch.from_numpy(np.ascontiguousarray(bag.coords_level0, dtype=np.int64))
        write_features(path, out, coords, self._provenance(bag, slide, int(out.shape[1])))
        if bag.patch_mpp is None:
            self.unknown_mpp.append(slide.slide_id)
        n = int(out.shape[0])
        return ItemResult(
            outputs=[path], meta={"n_patches": n, "dim": int(out.shape[1])}, warning="0 patches" if n == 0 else ""
        )

    def _checked(self, bag: ImportedBag, slide: SourceSlide) -> np.ndarray:
        plan, features = self.plan, bag.features
        if bag.encoder and plan.source_encoder and bag.encoder != plan.source_encoder:
            raise ItemError(
                f"{slide.features_file}: made with encoder {bag.encoder!r}, the other slides of this import with "
                f"{plan.source_encoder!r}; import it separately (--name) or re-extract it"
            )
        if features.shape[0] == 0:
            return np.zeros((0, plan.dim or features.shape[1]), dtype=np.float32)
        if plan.dim is not None and features.shape[1] != plan.dim:
            expected = (
                f"{plan.encoder} gives {plan.dim}" if _preset_dim(plan.encoder) else f"the other slides have {plan.dim}"
            )
            raise ItemError(
                f"{slide.features_file}: features have dimension {features.shape[1]}, but {expected}; check "
                "--encoder or re-extract this slide"
            )
        bad = int((~np.isfinite(features)).sum())
        if bad:
            raise ItemError(
                f"{slide.features_file}: {bad} non-finite feature values (NaN/inf); re-extract this slide with "
                f"{self.config.format}"
            )
        return features

    def _provenance(self, bag: ImportedBag, slide: SourceSlide, dim: int) -> dict[str, Any]:
        return {
            "extractor": self.plan.encoder,
            "dim": dim,
            "weights": self.plan.weights(self.config.format),
            "transform": None,
            "precision": None,
            "slide_id": slide.slide_id,
            "case_id": self.table.case_of(slide.slide_id),
            "source_path": None,
            "patch_mpp": bag.patch_mpp,
            "patch_mpp_source": bag.patch_mpp_source or None,
            "patch_px": bag.patch_px,
            "patch_px_level0": bag.patch_px_level0,
            "slide_mpp": self.ctx.mpp_of(slide.slide_id),
            "source": {**bag.source, "encoder": bag.encoder or self.plan.source_encoder},
        }
