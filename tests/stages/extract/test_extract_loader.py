"""The cross-slide loader: chunking, worker split, per-slide errors, loader crashes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from extract_factories import add_slide

from healnet_cli.core.runner import WorkItem
from healnet_cli.stages.extract.engine import _guarded
from healnet_cli.stages.extract.items import SlidePlan, discover_items, read_plan
from healnet_cli.stages.extract.loader import PatchChunks, make_chunks, make_loader


def _plan(n: int, slide_id: str = "s") -> SlidePlan:
    return SlidePlan(slide_id, f"/nowhere/{slide_id}.tif", 0, 8, np.zeros((n, 2), np.int64))


def test_chunks_cover_every_patch_in_order() -> None:
    chunks = make_chunks([_plan(5, "a"), _plan(0, "b"), _plan(4, "c")], batch_size=2)
    assert [(c.slide, c.start, c.n) for c in chunks] == [(0, 0, 2), (0, 2, 2), (0, 4, 1), (2, 0, 2), (2, 2, 2)]


def test_loader_reads_resizes_and_reports_bad_slides(tmp_path: Path) -> None:
    add_slide(tmp_path, "good", n_patches=5)
    add_slide(tmp_path, "bad", corrupt=True, n_patches=3)
    items, notes = discover_items(tmp_path / "tiles")
    assert [i.id for i in items] == ["bad", "good"] and not notes
    plans = [read_plan(item) for item in items]
    dataset = PatchChunks(plans, make_chunks(plans, 2), input_px=32, interpolation="bilinear")
    batches = list(make_loader(dataset, num_workers=2, pin_memory=False))
    assert [(b["slide"], b["start"]) for b in batches] == [(0, 0), (0, 2), (1, 0), (1, 2), (1, 4)]
    assert all("error" in b and "bad.tif" in b["error"] for b in batches[:2])
    good = [b["data"] for b in batches[2:]]
    assert [g.shape for g in good] == [(2, 3, 32, 32), (2, 3, 32, 32), (1, 3, 32, 32)]
    assert all(g.dtype == torch.uint8 for g in good)


def test_uncommitted_coords_are_not_items(tmp_path: Path) -> None:
    add_slide(tmp_path, "a", n_patches=2)
    add_slide(tmp_path, "b", n_patches=2)
    (tmp_path / "tiles" / "b.manifest.json").unlink()  # tiling killed before the commit
    items, notes = discover_items(tmp_path / "tiles")
    assert [i.id for i in items] == ["a"] and "without a tile manifest" in notes[0]
    assert isinstance(items[0], WorkItem)


def test_loader_crash_becomes_a_reason() -> None:
    def broken():
        yield {"slide": 0}
        raise RuntimeError("DataLoader worker (pid 123) is killed by signal: Bus error")

    out = list(_guarded(broken()))
    assert out[0] == {"slide": 0} and "Bus error" in out[1]["crash"]
