"""Readers of the feature files other tools write, one module per tool, all with the same three
functions: ``discover(root, coords_dir) -> [SourceSlide]``, ``header(slide) -> SlideHeader`` and
``read(slide, ctx) -> ImportedBag`` (features + level-0 coordinates + what the source recorded)."""

from __future__ import annotations

from types import ModuleType

FORMATS = ("trident", "clam", "stamp", "slideflow")

# encoder names as each tool writes them -> the healnet preset that computes the same output
PRESET_NAMES: dict[str, dict[str, str]] = {
    "trident": {
        "uni_v1": "uni", "uni_v2": "uni2-h", "conch_v15": "conch-v1.5", "virchow2": "virchow2",
        "hoptimus0": "h-optimus-0", "hoptimus1": "h-optimus-1", "gigapath": "gigapath", "phikon_v2": "phikon-v2",
        "resnet50": "resnet50-trunc",
    },
    "clam": {"resnet50_trunc": "resnet50-trunc", "uni_v1": "uni", "conch_v1_5": "conch-v1.5"},
    # STAMP's virchow2 is the class token alone (1280-d): not the virchow2 preset
    "stamp": {"uni": "uni", "uni2": "uni2-h", "conch1_5": "conch-v1.5", "h-optimus-0": "h-optimus-0",
              "h-optimus-1": "h-optimus-1", "gigapath": "gigapath"},
    "slideflow": {},
}  # fmt: skip


def reader(name: str) -> ModuleType:
    """The reader module of format ``name`` (one of :data:`FORMATS`)."""
    import importlib

    return importlib.import_module(f"{__name__}.{name}")
