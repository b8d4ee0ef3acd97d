"""docs/: the index links every page, and relative links in the docs point to existing files."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


REQUIRED = {"cli.md", "core.md", "configuration.md", "artifacts.md", "hpc.md", "troubleshooting.md"}


def test_index_links_the_guides_and_stage_pages() -> None:
    linked = set(LINK.findall((DOCS / "index.md").read_text()))
    stage_pages = {f"{name}.md" for name in ("tile", "extract", "omics", "train", "evaluate", "models")}
    pages = REQUIRED | {p.name for p in DOCS.glob("*.md") if p.name in stage_pages}
    missing = sorted(pages - linked)
    assert not missing, f"docs/index.md does not link: {missing}"


def test_relative_links_resolve() -> None:
    broken = []
    for page in sorted(DOCS.glob("*.md")):
        for target in LINK.findall(page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.name}: {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)
