"""Run ``healnet extract``: resolve the extractor (weights first), pick the shard's slides, skip the
fresh ones, stream the rest through one DataLoader and commit each slide."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from healnet_cli.artifacts.features import SCHEMA as FEATURES_SCHEMA
from healnet_cli.artifacts.features import check_folder_identity, encoder_identity
from healnet_cli.core.console import Console
from healnet_cli.core.device import resolve_device, resolve_precision
from healnet_cli.core.errors import one_line
from healnet_cli.core.hpc import Shard, parse_shard
from healnet_cli.core.runner import WorkItem, claim, report
from healnet_cli.core.status import StatusTable
from healnet_cli.core.store import ArtifactStore
from healnet_cli.core.workspace import Workspace
from healnet_cli.extractors import Extractor, autocast_dtype, check_weights_choice, load_extractor, spec_for
from healnet_cli.stages.extract.config import ExtractConfig, default_num_workers
from healnet_cli.stages.extract.engine import EngineOptions, EngineStats, extract_slides
from healnet_cli.stages.extract.items import SlidePlan, discover_items, read_plan


@dataclass
class ExtractResult:
    """Outcome of a run: the exit code, the status table, the output folder and loop stats."""

    exit_code: int
    status: StatusTable
    folder: Path
    stats: EngineStats


#: Bump when the code changes a slide's features for the same options (reading, resizing,
#: normalising, batching): recomputes cached slides.
ALGORITHM_VERSION = 1


def cache_params(extractor: Extractor, config: ExtractConfig) -> dict[str, Any]:
    """The parameters that key the cache: a different extractor, encoder arguments, weights,
    transform, precision, dtype or export means the slide is recomputed."""
    params = {
        "schema": FEATURES_SCHEMA,
        "extractor": extractor.name,
        "weights": extractor.weights.key,
        "transform": extractor.transform.as_dict(),
        "precision": extractor.precision,
        "dtype": config.dtype,
        "export": config.export,
    }
    if extractor.encoder_args:
        params["encoder_args"] = dict(extractor.encoder_args)
    if extractor.coarse_read:
        params["read"] = "coarsest pyramid level holding input_px"
    return params


def run_extract(config: ExtractConfig, *, console: Console, debug: bool = False) -> ExtractResult:
    """Extract features for every committed slide of the shard.

    Raises
    ------
    InputError
        Bad options, no coordinates, missing/corrupt/mismatched weights, ``--pretrained`` offline:
        all before any slide is opened.
    """
    config.validate()
    shard, device = _shard_and_device(config)
    resolve_precision(config.precision, device)  # a bad --precision fails before the weights are read
    check_weights_choice(
        spec_for(config.extractor, config.encoder_args), config.weights, config.pretrained, config.random_init
    )
    workspace = Workspace.at(config.workdir)
    items, notes = discover_items(workspace.tiles_dir)
    extractor = load_extractor(
        config.extractor,
        weights=config.weights,
        pretrained=config.pretrained,
        random_init=config.random_init,
        encoder_args=config.encoder_args,
    )
    extractor.prepare(device, autocast_dtype(extractor, config.precision, device), compile=config.compile)
    for note in notes:
        console.warn(note)
    folder = workspace.features_dir(config.name or extractor.name)
    check_folder_identity(folder, encoder_identity(extractor.provenance()), force=config.force)
    store = ArtifactStore(folder, "extract", cache_params(extractor, config), algorithm=ALGORITHM_VERSION)
    status = StatusTable("extract", shard=str(shard))
    folder.mkdir(parents=True, exist_ok=True)
    work, locked = _claim(shard.select(items, key=lambda item: item.id), store, status, console, config)
    options = EngineOptions(
        batch_size=config.batch_size,
        num_workers=config.num_workers
        if config.num_workers is not None
        else default_num_workers(model_on_cpu=device.type == "cpu", workers_compute=extractor.worker_fn is not None),
        out_dtype=torch.float16 if config.dtype == "float16" else torch.float32,
        export_clam=config.export == "clam",
        on_error=config.on_error,
        debug=debug,
    )
    console.info(
        f"extract: {extractor.name} ({extractor.dim}-d, {extractor.transform.input_px} px, {extractor.precision} on "
        f"{device}, weights {extractor.weights.key}); {len(work)} slide(s) to do, shard {shard}, "
        f"{options.num_workers} loader worker(s) -> {folder}"
    )
    stats = EngineStats()
    try:
        if work and not (config.on_error == "fail" and status.failed):
            stats = extract_slides(work, extractor, store=store, status=status, console=console, options=options)
    finally:
        for item_id in locked:
            store.release_lock(item_id)
    if stats.patches:
        console.info(f"extract: {stats.patches} patches in {stats.seconds:.1f} s ({stats.patches_per_s:.1f} patches/s)")
    return ExtractResult(report(status, console, folder=folder), status, folder, stats)


def _shard_and_device(config: ExtractConfig) -> tuple[Shard, torch.device]:
    """``--shard`` (or SLURM) and ``--device``; under ``torchrun`` the rank's shard and GPU."""
    shard = parse_shard(config.shard)
    launcher = torchrun_rank()
    if shard.is_whole and launcher is not None:
        shard = Shard(launcher[0], launcher[1])
    device_spec = config.device
    if launcher is not None and device_spec == "auto" and torch.cuda.is_available():
        device_spec = f"cuda:{launcher[2] % torch.cuda.device_count()}"
    return shard, resolve_device(device_spec)


def torchrun_rank(env: dict[str, str] | None = None) -> tuple[int, int, int] | None:
    """``(RANK, WORLD_SIZE, LOCAL_RANK)`` when launched by ``torchrun`` with several processes, else None.

    Used only when neither ``--shard`` nor a SLURM array chose a shard: each rank then takes shard
    ``RANK/WORLD_SIZE`` and, with ``--device auto``, the GPU ``LOCAL_RANK``.
    """
    import os

    env = dict(os.environ) if env is None else env
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        return None
    if world <= 1 or not 0 <= rank < world:
        return None
    return rank, world, local


def _claim(
    items: list[WorkItem], store: ArtifactStore, status: StatusTable, console: Console, config: ExtractConfig
) -> tuple[list[tuple[WorkItem, SlidePlan]], list[str]]:
    """Skip fresh items, lock and read the coordinates of the others (failures recorded)."""
    work: list[tuple[WorkItem, SlidePlan]] = []
    locked: list[str] = []
    for item in items:
        if not claim(item, store=store, status=status, console=console, force=config.force):
            continue
        locked.append(item.id)
        try:
            work.append((item, read_plan(item)))
        except Exception as exc:  # noqa: BLE001 - an unreadable coords file fails that slide only
            status.add(item.id, "failed", reason=one_line(exc))
            console.error(f"{item.id}: {one_line(exc)}")
    return work, locked
