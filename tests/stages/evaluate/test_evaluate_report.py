"""The report: valid self-contained HTML (data-URI images, no network), Markdown, CLI --json."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

from healnet_cli.cli import build_app
from healnet_cli.stages.evaluate.report import Figure, Report, to_html, to_markdown

VOID = {"meta", "img", "br", "hr", "link", "input"}


class _Checker(HTMLParser):
    """Collects tags, attributes and checks that every non-void tag is closed in order."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.attrs: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.attrs.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()


def check_html(text: str) -> _Checker:
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert text.startswith("<!DOCTYPE html>")
    assert not checker.errors and not checker.stack, (checker.errors, checker.stack)
    tags = [t for t, _ in checker.attrs]
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    for tag, attrs in checker.attrs:
        for key in ("src", "href"):
            assert "http" not in attrs.get(key, ""), (tag, attrs)
    assert "url(" not in text and "@import" not in text
    viewport = [a for t, a in checker.attrs if t == "meta" and a.get("name") == "viewport"]
    assert viewport and "width=device-width" in viewport[0]["content"]
    return checker


def test_report_escapes_and_embeds():
    report = Report("t <x>", "sub")
    report.heading("h")
    report.table(["a|b", "c"], [["<b>1</b>", "2"]])
    report.figure(Figure("f.png", b"\x89PNG\r\n\x1a\nxx", "cap & more"))
    html_text = to_html(report)
    check_html(html_text)
    assert "&lt;b&gt;1&lt;/b&gt;" in html_text and "data:image/png;base64," in html_text
    md = to_markdown(report)
    assert "| a\\|b | c |" in md and "![cap &amp; more](f.png)" in md


def test_summary_md_escapes_ids_and_gene_names():
    report = Report("run *x*", "sub_title")
    report.heading("# top")
    report.table(["rank", "feature"], [["1", "TP53_mut"], ["2", "<img src=x>"], ["3", "*P1*"], ["4", "[a](http://x)"]])
    report.bullets(["patient TCGA_01 | `code`", "1. not a list"])
    report.text("- not a list either ~~x~~")
    report.table(["value"], [["0.606 (0.565–0.650)"]])
    md = to_markdown(report)
    assert "TP53\\_mut" in md and "TP53_mut" not in md
    assert "&lt;img src=x&gt;" in md and "<img" not in md
    assert "\\*P1\\*" in md and "\\[a\\](http://x)" in md
    assert "- patient TCGA\\_01 \\| \\`code\\`" in md and "- 1\\. not a list" in md
    assert "\\- not a list either \\~\\~x\\~\\~" in md
    assert md.startswith("# run \\*x\\*\n\nsub\\_title\n") and "## \\# top" in md
    assert "| 0.606 (0.565–0.650) |" in md  # numbers stay readable


def test_cli_happy_path_report_and_json(run_dir):
    result = CliRunner().invoke(
        build_app(), ["evaluate", str(run_dir), "--bootstrap", "20", "--groups", "3", "--no-attention", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["exit_code"] == 0 and payload["runs"][0]["pooled"]["harrell_c"] > 0.6
    folder = run_dir / "evaluation"
    html_text = (folder / "report.html").read_text()
    checker = check_html(html_text)
    images = [a["src"] for t, a in checker.attrs if t == "img"]
    assert len(images) >= 4
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "intermediate" in html_text  # tertiles
    assert "overflow-x:auto" in html_text and "max-width" in html_text
    md = (folder / "summary.md").read_text()
    assert "km_risk_groups.png" in md and (folder / "km_risk_groups.png").stat().st_size > 1000
    config = (folder / "config.yaml").read_text()
    assert "command: evaluate" in config and "groups: 3" in config


def test_cli_attention_failure_is_exit_3(run_dir):
    # the fixture's checkpoints are placeholders: attention fails, metrics and report still come out
    result = CliRunner().invoke(build_app(), ["evaluate", str(run_dir), "--bootstrap", "0"])
    assert result.exit_code == 3, result.output
    metrics = json.loads((run_dir / "evaluation" / "metrics.json").read_text())
    assert "attention" in metrics["failed"] and metrics["pooled"]["harrell_c"]["value"] is not None


def test_cli_bad_option(run_dir):
    result = CliRunner().invoke(build_app(), ["evaluate", str(run_dir), "--groups", "1"])
    assert result.exit_code == 2 and "--groups 1" in result.stderr
    result = CliRunner().invoke(build_app(), ["evaluate", str(run_dir), "--times", "1,x"])
    assert result.exit_code == 2 and "--times" in result.stderr


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    CliRunner().invoke(build_app(), ["evaluate", str(run_dir), "--bootstrap", "0", "--no-attention"])
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=412,900",
            (run_dir / "evaluation" / "report.html").as_uri(),
        ],
        check=False,
        timeout=60,
        capture_output=True,
    )
    assert shot.is_file() and shot.stat().st_size > 5000
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size == (412, 900)
        assert len(img.convert("L").getcolors(maxcolors=1 << 16) or [0] * 100) > 10  # not a blank page


def test_rerun_removes_stale_figures(run_dir):
    folder = run_dir / "evaluation"
    folder.mkdir()
    (folder / "ablation.png").write_bytes(b"old")
    (folder / "notes.png").write_bytes(b"user file")
    result = CliRunner().invoke(build_app(), ["evaluate", str(run_dir), "--bootstrap", "0", "--no-attention"])
    assert result.exit_code == 0, result.stderr
    assert not (folder / "ablation.png").exists() and (folder / "notes.png").exists()


def test_config_file_section_and_sources(run_dir, tmp_path):
    cfg = tmp_path / "study.yaml"
    cfg.write_text("evaluate:\n  bootstrap: 0\n  groups: 3\n  attention: false\n")
    result = CliRunner().invoke(build_app(), ["evaluate", str(run_dir), "--config", str(cfg), "--seed", "4"])
    assert result.exit_code == 0, result.stderr
    import yaml

    written = yaml.safe_load((run_dir / "evaluation" / "config.yaml").read_text())
    assert written["options"]["groups"] == 3 and written["sources"]["groups"] == "config"
    assert written["sources"]["seed"] == "cli" and written["options"]["attention"] is False


def test_bad_device_is_exit_2(run_dir):
    result = CliRunner().invoke(build_app(), ["evaluate", str(run_dir), "--ablate", "--device", "tpu"])
    assert result.exit_code == 2 and "tpu" in result.stderr


def test_weight_grid_rasterises_patches():
    import numpy as np

    from healnet_cli.stages.evaluate.plots import heatmap_figure, weight_grid

    coords = np.array([[100, 50], [356, 50], [100, 562]], dtype=float)
    grid, x0, y0 = weight_grid(coords, np.array([1.0, 2.0, 3.0]), step=256)
    assert (x0, y0) == (100, 50) and grid.shape == (3, 2)
    assert grid[0, 0] == 1 and grid[0, 1] == 2 and grid[2, 0] == 3 and np.isnan(grid[1]).all()
    png = heatmap_figure(coords, np.ones(3), patch_px_level0=256, thumbnail=None, downsample=None, title="flat")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_out_must_not_be_a_run_folder(run_dir):
    before = (run_dir / "config.yaml").read_text()
    result = CliRunner().invoke(build_app(), ["evaluate", str(run_dir), "--out", str(run_dir), "--no-attention"])
    assert result.exit_code == 2 and "training run folder" in result.stderr
    assert (run_dir / "config.yaml").read_text() == before


def test_tiny_run_reports_no_ci_in_report_console_and_json(tmp_path):
    from evaluate_fixtures import make_run

    run = make_run(tmp_path / "tiny", n=9, n_folds=3)
    result = CliRunner().invoke(build_app(), ["evaluate", str(run), "--bootstrap", "50", "--no-attention", "--json"])
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)["runs"][0]
    assert payload["pooled_ci95"]["harrell_c"] is None
    assert payload["pooled_ci_reason"]["harrell_c"].startswith("too few events for a CI")
    pooled = json.loads((run / "evaluation" / "metrics.json").read_text())["pooled"]["harrell_c"]
    assert pooled["value"] is not None and pooled["ci95"] is None and "too few events for a CI" in pooled["ci_reason"]
    assert "too few events for a CI" in (run / "evaluation" / "report.html").read_text()
    assert "(too few events for a CI)" in result.stderr and "–" not in result.stderr.split("Harrell")[1].splitlines()[0]


def test_console_prints_the_headline_table(run_dir):
    result = CliRunner().invoke(build_app(), ["evaluate", str(run_dir), "--bootstrap", "20", "--no-attention"])
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    header = next(i for i, line in enumerate(lines) if "value (95% CI)" in line and "mean ± sd over folds" in line)
    table = lines[header + 1 : header + 5]
    metrics = json.loads((run_dir / "evaluation" / "metrics.json").read_text())
    for line, (label, key) in zip(
        table,
        [
            ("Harrell's c-index", "harrell_c"),
            ("Uno's c-index", "uno_c"),
            ("Integrated Brier score", "ibs"),
            ("Mean time-dependent AUC", "mean_auc"),
        ],
        strict=True,
    ):
        entry = metrics["pooled"][key]
        assert (
            line.strip().startswith(label)
            and f"{entry['value']:.3f} ({entry['ci95'][0]:.3f}–{entry['ci95'][1]:.3f})" in line
        )
        assert f"({metrics['across_folds'][key]['n_folds']} folds)" in line


def test_out_is_new_empty_or_an_earlier_evaluation(run_dir, tmp_path):
    out = tmp_path / "eval_out"
    args = ["evaluate", str(run_dir), "--bootstrap", "0", "--no-attention", "--out", str(out)]
    assert CliRunner().invoke(build_app(), args).exit_code == 0  # a new folder
    (out / "ablation.png").write_bytes(b"stale figure of an earlier evaluation")
    again = CliRunner().invoke(build_app(), args)
    assert again.exit_code == 0, again.stderr  # re-evaluation into its own output
    assert not (out / "ablation.png").exists() and (out / "report.html").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert CliRunner().invoke(build_app(), [*args[:-1], str(empty)]).exit_code == 0
    user = tmp_path / "mine"
    user.mkdir()
    (user / "heatmap_1_mine.png").write_bytes(b"user figure")
    refused = CliRunner().invoke(build_app(), [*args[:-1], str(user)])
    assert refused.exit_code == 2 and "not written by `healnet evaluate`" in refused.stderr
    assert (user / "heatmap_1_mine.png").read_bytes() == b"user figure" and len(list(user.iterdir())) == 1


def test_out_left_half_written_by_a_killed_evaluate_is_reused(run_dir, tmp_path):
    from healnet_cli.core.atomic import TMP_PREFIX, writer_tag

    out = tmp_path / "killed"
    out.mkdir()
    host = writer_tag().split("+")[0]
    dead = out / f"{TMP_PREFIX}report.html.{host}+999999.abc123"
    dead.write_text("half-written by a killed evaluate")
    args = ["evaluate", str(run_dir), "--bootstrap", "0", "--no-attention", "--out", str(out)]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.stderr
    assert not dead.exists() and (out / "report.html").is_file()


def test_figures_are_readable_at_phone_width(run_dir, monkeypatch):
    """Every text of every figure is >= 10 px when the figure is shown 380 px wide (a 400-px phone)."""
    from evaluate_fixtures import FakeInference
    from matplotlib.text import Text

    from healnet_cli.core.console import Console
    from healnet_cli.stages.evaluate import plots
    from healnet_cli.stages.evaluate.config import EvaluateConfig
    from healnet_cli.stages.evaluate.run import evaluate_run
    from healnet_cli.stages.evaluate.run_folder import read_run

    seen, real = [], plots.to_png

    def recording(fig):
        png = real(fig)  # rendered: tick labels exist now
        texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
        seen.append((fig.get_figwidth(), min(t.get_fontsize() for t in texts), len(texts)))
        return png

    monkeypatch.setattr(plots, "to_png", recording)
    ev = evaluate_run(
        read_run(run_dir),
        EvaluateConfig(bootstrap=0, ablate=True),
        console=Console(quiet=True),
        inference=FakeInference(),
    )
    assert {"td_auc", "brier", "km", "calibration", "ablation", "top_rna", "heatmap_0"} <= set(ev.figures)
    assert len(seen) == len(ev.figures)
    for width_in, smallest_pt, n_texts in seen:
        assert n_texts > 3
        assert smallest_pt * 380 / (72 * width_in) >= 10, (width_in, smallest_pt)


def test_report_css_keeps_figures_full_width_on_a_phone():
    from healnet_cli.stages.evaluate.report import CSS

    assert "img{max-width:100%" in CSS.replace(" ", "")
    phone = CSS.split("@media (max-width:600px)")[1]
    assert "figure{" in phone and "width:100%" in phone
