"""The Markdown summary and the self-contained HTML report, rendered from one list of blocks.

HTML: figures embedded as base64 PNG data URIs, inline CSS only, no scripts or network resources;
a viewport meta tag, a max-width column and horizontally scrolling tables keep it readable on a
phone.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Figure:
    """A PNG figure: its file name in the evaluation folder and its caption."""

    name: str
    png: bytes
    caption: str


@dataclass
class Block:
    """One element of the report: ``heading``, ``text``, ``table``, ``figure`` or ``list``."""

    kind: str
    text: str = ""
    headers: Sequence[str] = ()
    rows: Sequence[Sequence[str]] = ()
    items: Sequence[str] = ()
    figure: Figure | None = None
    level: int = 2


@dataclass
class Report:
    title: str
    subtitle: str = ""
    blocks: list[Block] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(Block("heading", text, level=level))

    def text(self, text: str) -> None:
        self.blocks.append(Block("text", text))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.blocks.append(Block("table", headers=list(headers), rows=[list(map(str, r)) for r in rows]))

    def bullets(self, items: Sequence[str]) -> None:
        if items:
            self.blocks.append(Block("list", items=list(items)))

    def figure(self, fig: Figure) -> None:
        self.blocks.append(Block("figure", figure=fig))

    @property
    def figures(self) -> list[Figure]:
        return [b.figure for b in self.blocks if b.kind == "figure" and b.figure is not None]


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md_escape(text: str) -> str:
    """Text as literal Markdown: ``&``, ``<``, ``>`` as entities (no raw HTML), the characters of
    emphasis, code, links and tables backslash-escaped (a gene ``TP53_mut`` or a patient ``*P1*`` is
    not emphasis) and a leading ``#``/``-``/``+``/``1.`` kept from starting a heading or a list, as
    ``report.html`` escapes everything it shows."""
    out = _MD_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False)).replace("\n", " ")
    out = re.sub(r"^(\s*)([#+=-])(?=\s|$|[#=-])", r"\1\\\2", out)
    return re.sub(r"^(\s*\d+)([.)])(?=\s|$)", r"\1\\\2", out)


def to_markdown(report: Report) -> str:
    """Markdown with figures linked by file name (they sit beside ``summary.md``); every text is
    escaped (:func:`md_escape`)."""
    esc = md_escape
    lines = [f"# {esc(report.title)}", ""]
    if report.subtitle:
        lines += [esc(report.subtitle), ""]
    for b in report.blocks:
        if b.kind == "heading":
            lines += ["#" * b.level + " " + esc(b.text), ""]
        elif b.kind == "text":
            lines += [esc(b.text), ""]
        elif b.kind == "list":
            lines += [f"- {esc(item)}" for item in b.items] + [""]
        elif b.kind == "table":
            lines.append("| " + " | ".join(esc(h) for h in b.headers) + " |")
            lines.append("|" + "---|" * len(b.headers))
            lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in b.rows]
            lines.append("")
        elif b.kind == "figure" and b.figure is not None:
            cap = esc(b.figure.caption)
            lines += [f"![{cap}]({b.figure.name})", "", f"*{cap}*", ""]
    return "\n".join(lines).rstrip() + "\n"


CSS = """
*{box-sizing:border-box}
body{margin:0;font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1d1d1f;
background:#f7f7f8;line-height:1.45;font-size:16px}
main{max-width:960px;margin:0 auto;padding:16px;background:#fff}
h1{font-size:1.6rem;margin:.4rem 0}h2{font-size:1.25rem;margin-top:1.8rem;border-bottom:1px solid #ddd}
h3{font-size:1.05rem}.sub{color:#555;margin-top:0}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:.6rem 0}
table{border-collapse:collapse;font-size:.9rem;min-width:100%}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;white-space:nowrap}
th{background:#f0f0f3}tr:nth-child(even) td{background:#fafafa}
figure{margin:1rem 0}img{max-width:100%;height:auto;display:block;margin:0 auto}
figcaption{font-size:.85rem;color:#555;text-align:center}
ul{padding-left:1.2rem}footer{color:#777;font-size:.8rem;margin-top:2rem}
@media (max-width:600px){body{font-size:15px}main{padding:10px}th,td{padding:3px 5px}
figure{margin:.8rem 0}figure img{width:100%}figcaption{font-size:.9rem}}
"""


def _html_block(b: Block) -> str:
    esc = html.escape
    if b.kind == "heading":
        return f"<h{b.level}>{esc(b.text)}</h{b.level}>"
    if b.kind == "text":
        return f"<p>{esc(b.text)}</p>"
    if b.kind == "list":
        return "<ul>" + "".join(f"<li>{esc(i)}</li>" for i in b.items) + "</ul>"
    if b.kind == "table":
        head = "".join(f"<th>{esc(h)}</th>" for h in b.headers)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in b.rows)
        return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    if b.kind == "figure" and b.figure is not None:
        data = base64.b64encode(b.figure.png).decode("ascii")
        cap = esc(b.figure.caption)
        return f'<figure><img src="data:image/png;base64,{data}" alt="{cap}"><figcaption>{cap}</figcaption></figure>'
    return ""


def to_html(report: Report, *, footer: str = "") -> str:
    """A single self-contained HTML document."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(report.title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body><main>",
        f"<h1>{html.escape(report.title)}</h1>",
    ]
    if report.subtitle:
        parts.append(f'<p class="sub">{html.escape(report.subtitle)}</p>')
    parts += [_html_block(b) for b in report.blocks]
    if footer:
        parts.append(f"<footer>{html.escape(footer)}</footer>")
    parts += ["</main></body>", "</html>"]
    return "\n".join(parts) + "\n"
