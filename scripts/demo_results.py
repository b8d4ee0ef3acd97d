#!/usr/bin/env python
"""Keep the README's demo figures equal to what the demo produces.

``healnet demo`` writes ``demo_out/demo.json`` (its options, step times and c-indices). This script
copies the figures of a run at the default options into ``docs/demo_results.json`` and writes the
README's demo sentence (between ``<!-- demo-results -->`` markers) from that file. A fast test
(``tests/docs/test_demo_results.py``) fails when the README sentence differs from the file; a slow one
(``-m slow``) reruns the demo and compares its c-indices with the file.

Usage::

    make demo && python scripts/demo_results.py --from demo_out/demo.json --machine "2 CPU cores"
    python scripts/demo_results.py            # rewrite the README sentence from docs/demo_results.json
    python scripts/demo_results.py --check    # exit 1 when the README sentence is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "demo_results.json"
README = ROOT / "README.md"
START, END = "<!-- demo-results -->", "<!-- /demo-results -->"
BLOCK = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
#: The runs, as the README names them.
NAMES = {"wsi_rna": "slides + RNA", "wsi": "slides alone", "rna": "RNA alone"}


def results_from_demo(demo: dict[str, Any], machine: str) -> dict[str, Any]:
    """The figures the README quotes, from a ``demo.json``."""
    missing = [name for name in NAMES if demo.get("cindex", {}).get(name) is None]
    if missing:
        raise ValueError(f"demo.json has no c-index for {', '.join(missing)}; did every run finish?")
    return {
        "source": "healnet demo (demo_out/demo.json)",
        "config": demo.get("config", {}),
        "cindex": {name: round(float(demo["cindex"][name]), 3) for name in NAMES},
        "total_seconds": round(float(demo["total_seconds"])),
        "machine": machine,
    }


def sentence(results: dict[str, Any]) -> str:
    """The README's demo sentence for ``results``."""
    c = results["cindex"]
    fused, single = c["wsi_rna"], max(c["wsi"], c["rna"])
    verdict = "beats each single modality" if fused > single else "does not beat the best single modality"
    seed = results.get("config", {}).get("seed", 0)
    return (
        f"{START}\nOn the default seed ({seed}) the multimodal model {verdict}: Harrell's c-index "
        f"{c['wsi_rna']:.3f} for slides + RNA vs {c['wsi']:.3f} for slides alone and {c['rna']:.3f} for RNA "
        f"alone (mean over the folds). The whole demo took {results['total_seconds']} s on {results['machine']}. "
        f"These are the demo's own figures, kept in `docs/demo_results.json` by `scripts/demo_results.py`.\n{END}"
    )


def render(readme: str, results: dict[str, Any]) -> str:
    if not BLOCK.search(readme):
        raise ValueError(f"{README.name}: no {START} … {END} block")
    return BLOCK.sub(lambda _: sentence(results), readme, count=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="demo_json", type=Path, help="a demo.json of a run at the default options")
    parser.add_argument("--machine", default="2 CPU cores", help="where it ran, as the README should say")
    parser.add_argument("--check", action="store_true", help="exit 1 when the README sentence is stale")
    args = parser.parse_args(argv)
    if args.demo_json is not None:
        results = results_from_demo(json.loads(args.demo_json.read_text()), args.machine)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    results = json.loads(RESULTS.read_text())
    readme = README.read_text()
    updated = render(readme, results)
    if args.check:
        if updated != readme:
            print(f"{README} is stale: run `python scripts/demo_results.py`", file=sys.stderr)
            return 1
        return 0
    README.write_text(updated)
    print(f"wrote {README} from {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
