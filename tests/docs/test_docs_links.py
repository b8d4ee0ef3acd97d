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


#: ``.md`` names that are outputs of healnet, not pages of the repository.
OUTPUT_PAGES = {"summary.md"}


def test_named_pages_exist_in_the_repository() -> None:
    """Every ``NAME.md`` that code, docs or the README name is a file of this repository (design notes
    kept elsewhere are cited by their papers instead); ``../shared/...`` paths are the dev data."""
    pages = {p.name for p in ROOT.rglob("*.md") if ".venv" not in p.parts and ".git" not in p.parts}
    texts = [*(ROOT / "healnet_cli").rglob("*.py"), *DOCS.glob("*.md"), ROOT / "README.md"]
    missing = set()
    for path in texts:
        for match in re.finditer(r"(\.\./)?[\w/.-]*?([A-Za-z][\w-]*\.md)\b", path.read_text()):
            if match.group(1) or match.group(2) in OUTPUT_PAGES:
                continue
            if match.group(2) not in pages:
                missing.add(f"{path.relative_to(ROOT)}: {match.group(2)}")
    assert not missing, sorted(missing)
