"""The bad-input catalogue: one case per mishandled input, each asserting the exit code, the
message, that the other items finished and that earlier artifacts are intact.

To add a case, append a :class:`Case` to ``CASES``: ``build`` writes the inputs (the ``Inputs``
helpers give slides, a tiled workdir, an omics workdir and a trained run, each a fresh copy) and
returns the command line. Optional: ``env`` (environment), ``patch`` (a fake failure at a seam),
``read_only`` (paths made unwritable during the run), ``unprivileged`` (run as a user without
root's override of file modes), ``check`` (more assertions, e.g. that a rerun resumes).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from pipeline_factories import EXTRACT_ARGS, TILE_ARGS, make_slides, run_healnet, wide_table
from typer.testing import CliRunner

from healnet_cli.cli import build_app

runner = CliRunner()
#: Files that count as artifacts for "earlier artifacts are intact".
ARTIFACTS = (".parquet", ".safetensors", ".png", ".h5", ".geojson", ".pt", ".manifest.json", "summary.json")


@dataclass
class Outcome:
    exit_code: int
    output: str  # stdout + stderr
    stdout: str


class Inputs:
    """Fresh copies of prepared inputs under ``root`` (the originals are built once per module)."""

    def __init__(self, root: Path, originals: Path):
        self.root, self._originals = root, originals

    def _copy(self, name: str, build: Callable[[Path], None]) -> Path:
        original = self._originals / name
        if not original.exists():
            build(original)
        target = self.root / name
        if not target.exists():
            shutil.copytree(original, target, symlinks=True)
        return target

    def slides(self) -> Path:
        """Six small slides, ``slide_0.tif`` ... ``slide_5.tif``."""
        return self._copy("slides", lambda p: make_slides(p))

    def tiled(self) -> Path:
        """A workdir whose ``tiles/`` holds the six slides (the coordinates point at the originals)."""

        def build(work: Path) -> None:
            self.slides()
            assert _invoke(["tile", str(self._originals / "slides"), "-w", str(work), *TILE_ARGS]).exit_code == 0

        return self._copy("tiled", build)

    def table(self) -> Path:
        return wide_table(self.root / "tables" / "study_all_clean.csv")

    def omics(self) -> Path:
        """A workdir with ``omics/`` built from :meth:`table` (12 patients, rna/cnv/mut/clinical)."""

        def build(work: Path) -> None:
            table = wide_table(self._originals / "tables" / "study_all_clean.csv")
            assert _invoke(["omics", str(table), "-w", str(work)]).exit_code == 0

        return self._copy("omics_work", build)

    def trained(self) -> Path:
        """A finished 2-fold omics-only run (``runs/snn``) trained on :meth:`omics`."""

        def build(runs: Path) -> None:
            work = self._originals / "omics_work"
            if not work.exists():
                self.omics()
            assert _invoke(["train", *train_args(work, runs / "snn")]).exit_code == 0

        return self._copy("runs", build) / "snn"


def train_args(work: Path, out: Path) -> list[str]:
    return ["-w", str(work), "--modalities", "rna", "--model", "snn", "--folds", "2", "--epochs", "1",
            "--device", "cpu", "--batch-size", "4", "--seed", "0", "--out", str(out)]  # fmt: skip


def _invoke(argv: list[str], env: dict[str, str] | None = None) -> Outcome:
    result = runner.invoke(build_app(), argv, env=env)
    return Outcome(result.exit_code, result.output, result.stdout)


@dataclass(frozen=True)
class Case:
    """One bad input: what to build, the command, and what must happen."""

    id: str
    build: Callable[[Inputs], list[str]]
    exit_code: int
    message: str  # a regular expression the output must match
    env: dict[str, str] = field(default_factory=dict)
    patch: Callable[[pytest.MonkeyPatch, Inputs], None] | None = None
    read_only: Callable[[Inputs], list[Path]] | None = None
    unprivileged: bool = False
    check: Callable[[Inputs, Outcome], None] | None = None


# -- builders and checks -------------------------------------------------------------------------
def _tile(inputs: Inputs, *extra: str) -> list[str]:
    return ["tile", str(inputs.slides()), "-w", str(inputs.root / "work"), *TILE_ARGS, *extra, "--json"]


def _tiled_count(n: int) -> Callable[[Inputs, Outcome], None]:
    def check(inputs: Inputs, outcome: Outcome) -> None:
        assert len(list((inputs.root / "work" / "tiles").glob("*.manifest.json"))) == n

    return check


def _with_dangling_link(inputs: Inputs) -> list[str]:
    (inputs.slides() / "gone.tif").symlink_to(inputs.root / "nowhere.tif")
    return _tile(inputs)


def _with_link_loop(inputs: Inputs) -> list[str]:
    folder = inputs.slides()
    (folder / "loop_a.tif").symlink_to(folder / "loop_b.tif")
    (folder / "loop_b.tif").symlink_to(folder / "loop_a.tif")
    return _tile(inputs)


def _with_unreadable_slide(inputs: Inputs) -> list[str]:
    (inputs.slides() / "slide_3.tif").chmod(0)
    return _tile(inputs)


def _config(text: str) -> Callable[[Inputs], list[str]]:
    def build(inputs: Inputs) -> list[str]:
        path = inputs.root / "study.yaml"
        path.write_text(text)
        return [*_tile(inputs), "--config", str(path)]

    return build


def _mpp_csv(rows: str) -> Callable[[Inputs], list[str]]:
    def build(inputs: Inputs) -> list[str]:
        path = inputs.root / "mpp.csv"
        path.write_text("slide_id,mpp\n" + rows)
        return [*_tile(inputs), "--mpp-csv", str(path)]

    return build


def _full_disk_at(suffix: str, nth: int) -> Callable[[pytest.MonkeyPatch, Inputs], None]:
    """The disk fills up at the ``nth`` file written whose name ends with ``suffix``: from then on
    every write fails with ENOSPC (at the atomic writer's fsync-and-rename seam)."""

    def patch(monkeypatch: pytest.MonkeyPatch, inputs: Inputs) -> None:
        from healnet_cli.core import atomic

        real, seen = atomic._publish, []

        def publish(tmp: Path, target: Path, mode: int) -> None:
            seen.extend([target] if target.name.endswith(suffix) else [])
            if len(seen) >= nth:
                raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
            real(tmp, target, mode)

        monkeypatch.setattr(atomic, "_publish", publish)

    return patch


def _extract_resumes(inputs: Inputs, outcome: Outcome) -> None:
    features = inputs.root / "tiled" / "features" / "timm-test_resnet"
    committed = len(list(features.glob("*.manifest.json")))
    assert committed == 2  # stopped at the first failed write: slides 3-6 never started
    again = _invoke(["extract", "-w", str(inputs.root / "tiled"), *EXTRACT_ARGS, "--json"])
    assert again.exit_code == 0 and '"skipped": 2' in again.stdout and '"done": 4' in again.stdout


def _train_resumes(inputs: Inputs, outcome: Outcome) -> None:
    out = inputs.root / "runs_new" / "snn"
    assert (out / "fold_0" / "checkpoint.pt").is_file() and not (out / "fold_1" / "checkpoint.pt").exists()
    again = _invoke(["train", *train_args(inputs.omics(), out), "--resume"])
    assert again.exit_code == 0, again.output
    assert "fold 0: already finished" in again.output and (out / "predictions.parquet").is_file()


def _clinical_table(inputs: Inputs, text: str, name: str = "clinical.tsv") -> Path:
    path = inputs.root / name
    path.write_text(text)
    return path


_OS_TABLE = "case_id\tOS.time\tOS\n" + "".join(f"TCGA-AA-{i:04d}\t{300 + 30 * i}\t{i % 2}\n" for i in range(12))


def _labels_args(table: Path, work: Path, *extra: str) -> list[str]:
    return [
        "omics",
        "labels",
        str(table),
        "--time-col",
        "OS.time",
        "--event-col",
        "OS",
        "--time-unit",
        "days",
        "-w",
        str(work),
        *extra,
    ]


def _labels_after_omics(inputs: Inputs) -> list[str]:
    """`omics labels` over the labels `omics TABLE` built: refused, naming the other command."""
    return _labels_args(_clinical_table(inputs, _OS_TABLE), inputs.omics())


def _omics_after_labels(inputs: Inputs) -> list[str]:
    """`omics TABLE` again after `omics labels --force` took the labels over: they are kept."""
    work, table = inputs.root / "own", inputs.table()
    assert _invoke(["omics", str(table), "-w", str(work)]).exit_code == 0
    assert _invoke(_labels_args(_clinical_table(inputs, _OS_TABLE), work, "--force")).exit_code == 0
    return ["omics", str(table), "-w", str(work)]


def _labels_unit(unit: str, work: str) -> Callable[[Inputs, Outcome], None]:
    def check(inputs: Inputs, outcome: Outcome) -> None:
        from healnet_cli.artifacts.omics import read_labels

        labels, meta = read_labels(inputs.root / work / "omics" / "labels.parquet")
        assert meta["time_unit"] == unit and len(labels) == 12

    return check


def _no_labels(work: str) -> Callable[[Inputs, Outcome], None]:
    def check(inputs: Inputs, outcome: Outcome) -> None:
        assert not (inputs.root / work / "omics" / "labels.parquet").exists()

    return check


_ALL_CENSORED = "case_id,survival_months,censorship,G1_rnaseq,G2_rnaseq\n" + "".join(
    f"TCGA-AA-{i:04d},{5 + i},1,{i * 0.5},{(i % 3) * 1.5}\n" for i in range(5)
)
_DECIMAL_COMMAS = "case_id;age;survival_months;censorship;G1_rnaseq;G2_rnaseq\n" + "".join(
    f"TCGA-AA-{i:04d};{60 + i};{10 + i},5;{i % 2};{i},25;-{i},5\n" for i in range(4)
)


def _read_decimal_commas(inputs: Inputs, outcome: Outcome) -> None:
    from healnet_cli.artifacts.omics import read_labels, read_modality

    rna, _ = read_modality(inputs.root / "dec" / "omics" / "rna.parquet")
    assert rna["G1"].tolist() == [0.25, 1.25, 2.25, 3.25] and rna["G2"].tolist() == [-0.5, -1.5, -2.5, -3.5]
    labels, _ = read_labels(inputs.root / "dec" / "omics" / "labels.parquet")
    assert labels["time"].tolist() == [10.5, 11.5, 12.5, 13.5] and int(labels["event"].sum()) == 2


def _labels(inputs: Inputs, *, censored: bool = False, keep: int | None = None) -> Path:
    """The omics workdir with every patient censored, or labels for only the first ``keep`` patients."""
    from healnet_cli.artifacts.omics import modality_path, write_labels

    work = inputs.omics()
    path = modality_path(work / "omics", "labels")
    labels = pd.read_parquet(path)
    labels = labels.assign(event=False) if censored else labels
    write_labels(path, labels.iloc[:keep] if keep is not None else labels, {"time_unit": "days"})
    return work


def _nothing_trained(inputs: Inputs, outcome: Outcome) -> None:
    assert not list((inputs.root / "runs_new").rglob("checkpoint.pt"))


CASES = [
    # issue 15.2: unreadable, dangling and looping slides fail alone (exit 3), the others are tiled
    Case(
        "15.2-dangling-symlink",
        _with_dangling_link,
        3,
        r"gone: .*gone\.tif: dangling symlink to .*nowhere\.tif",
        check=_tiled_count(6),
    ),
    Case("15.2-symlink-loop", _with_link_loop, 3, r"loop_a: .*symlink loop", check=_tiled_count(6)),
    Case(
        "15.2-unreadable-slide",
        _with_unreadable_slide,
        3,
        r"slide_3: .*slide_3\.tif: permission denied; make the slide readable",
        unprivileged=True,
        check=_tiled_count(5),
    ),
    # issue 15.3: a read-only workdir (or run folder) is an input error naming the path, for every stage
    Case(
        "15.3-read-only-tile",
        lambda i: ["tile", str(i.slides()), "-w", str(i.tiled()), *TILE_ARGS, "--min-tissue", "0.6"],
        2,
        r"tiled/tiles/?\S*: permission denied .*choose another --workdir",
        read_only=lambda i: [i.tiled() / "tiles"],
    ),
    Case(
        "15.3-read-only-extract",
        lambda i: ["extract", "-w", str(i.tiled()), *EXTRACT_ARGS],
        2,
        r"tiled/features\S*: permission denied",
        read_only=lambda i: [i.tiled()],
    ),
    Case(
        "15.3-read-only-omics",
        lambda i: ["omics", str(i.table()), "-w", str(i.root / "ro")],
        2,
        r"ro/omics\S*: permission denied",
        read_only=lambda i: [_mkdir(i.root / "ro")],
    ),
    Case(
        "15.3-read-only-train",
        lambda i: ["train", *train_args(i.omics(), i.root / "ro" / "run")],
        2,
        r"ro/run\S*: permission denied",
        read_only=lambda i: [_mkdir(i.root / "ro")],
    ),
    Case(
        "15.3-read-only-evaluate",
        lambda i: ["evaluate", str(i.trained()), "--bootstrap", "5"],
        2,
        r"snn\S*: permission denied",
        read_only=lambda i: [i.trained()],
    ),
    # issue 15.4: a full disk stops at once with the path and the free space; the rerun resumes
    Case(
        "15.4-full-disk-extract",
        lambda i: ["extract", "-w", str(i.tiled()), *EXTRACT_ARGS],
        1,
        r"no space left writing \S+slide_2\.safetensors \(\d.* free on its file system",
        patch=_full_disk_at(".safetensors", 3),
        check=_extract_resumes,
    ),
    Case(
        "15.4-full-disk-train",
        lambda i: ["train", *train_args(i.omics(), i.root / "runs_new" / "snn")],
        1,
        r"no space left writing \S+fold_1\S*checkpoint\.pt",
        patch=_full_disk_at("checkpoint.pt", 2),
        check=_train_resumes,
    ),
    # issue 15.5: a cohort (or a fold's training set) without events is an input error before any training
    Case(
        "15.5-all-censored-train",
        lambda i: ["train", *train_args(_labels(i, censored=True), i.root / "runs_new" / "snn")],
        2,
        r"the cohort has 0 events among 12 patients \(all censored\)",
        check=_nothing_trained,
    ),
    Case(
        "15.5-three-patients",
        lambda i: ["train", *train_args(_labels(i, keep=3), i.root / "runs_new" / "snn")],
        2,
        r"fold 0 would be fitted on 1 patient\(s\) with \d event\(s\) \(the cohort: 3 patients.*use fewer --folds",
        check=_nothing_trained,
    ),
    # issue 15.8: variables that images set for their own purposes change nothing
    Case("15.8-HEALNET_VERSION=true", _tile, 0, r'"done": 6', env={"HEALNET_VERSION": "true"}),
    Case("15.8-HEALNET_VERSION=0.1.0", _tile, 0, r'"done": 6', env={"HEALNET_VERSION": "0.1.0"}),
    Case(
        "15.8-HEALNET_DEBUG=verbose",
        _tile,
        0,
        r"ignoring HEALNET_DEBUG='verbose' \(expected 1 or 0\)",
        env={"HEALNET_DEBUG": "verbose"},
    ),
    # issue 15.9: config sections
    Case(
        "15.9-misspelled-section",
        _config("tiles:\n  mpp: 0.25\n"),
        2,
        r"unknown section 'tiles' \(did you mean 'tile'\?\); sections: cohort, demo, doctor, evaluate, extract, "
        r".*tile, train",
    ),
    Case("15.9-flat-config", _config("mpp: 0.25\npatch-size: 128\n"), 2, r"no command sections .*sections: cohort"),
    Case("15.9-mapping-in-a-command", _config("tile:\n  mpp: {x: 1}\n"), 2, r"section 'tile' has no sub-commands"),
    # issue 15.11: conflicting duplicate rows in --mpp-csv (identical duplicates are fine)
    Case(
        "15.11-conflicting-mpp-rows",
        _mpp_csv("slide_1,0.5\nslide_2,0.5\nslide_1,0.25\n"),
        2,
        r"slide 'slide_1' has mpp 0\.5 in row 2 and 0\.25 in row 4; keep one row per slide",
    ),
    Case("15.11-identical-mpp-rows", _mpp_csv("slide_1,0.5\nslide_1,0.5\n"), 0, r'"done": 6'),
    # issue 15.12: an --event-col whose name says censoring (or a --censor-col named like an event)
    Case(
        "15.12-event-col-censorship",
        lambda i: [
            "omics",
            "labels",
            str(_clinical_table(i, "case_id,months,censorship\nP1,3,1\nP2,5,0\n", "c.csv")),
            "--time-col",
            "months",
            "--event-col",
            "censorship",
            "-w",
            str(i.root / "w"),
        ],
        2,
        r"--event-col 'censorship': the name says censoring \(1 = censored\).*pass --censor-col censorship, or add "
        r"--status-as-is",
        check=_no_labels("w"),
    ),
    Case(
        "15.12-censor-col-OS",
        lambda i: (
            _labels_args(_clinical_table(i, _OS_TABLE), i.root / "w")[:5]
            + ["--censor-col", "OS", "-w", str(i.root / "w")]
        ),
        2,
        r"--censor-col 'OS': the name says event .*pass --event-col OS",
        check=_no_labels("w"),
    ),
    # issue 15.13: an all-censored label table passes with a warning giving the counts
    Case(
        "15.13-all-censored-labels",
        lambda i: [
            "omics",
            "labels",
            str(_clinical_table(i, "case_id,t,dead\nP1,3,0\nP2,5,0\nP3,7,0\n", "c.csv")),
            "--time-col",
            "t",
            "--event-col",
            "dead",
            "-w",
            str(i.root / "w"),
        ],
        0,
        r"labels: no events: 0 events, 3 censored among 3 patients",
    ),
    Case(
        "15.13-all-censored-table",
        lambda i: ["omics", str(_clinical_table(i, _ALL_CENSORED, "c_all_clean.csv")), "-w", str(i.root / "w")],
        0,
        r"labels: no events: 0 events, 5 censored among 5 patients",
    ),
    # issue 15.14: a ';'-separated table with decimal commas is read as decimals; mixed separators are read with
    # points, said
    Case(
        "15.14-decimal-commas",
        lambda i: ["omics", str(_clinical_table(i, _DECIMAL_COMMAS, "eu_all_clean.csv")), "-w", str(i.root / "dec")],
        0,
        r"eu_all_clean\.csv: numbers are written with decimal commas \('12,5'\); read as decimals",
        check=_read_decimal_commas,
    ),
    Case(
        "15.14-mixed-decimal-separators",
        lambda i: [
            "omics",
            str(_clinical_table(i, "case_id;G1_rnaseq;G2_rnaseq\nP1;0,5;1.5\nP2;2,5;3.5\n", "mix_all_clean.csv")),
            "-w",
            str(i.root / "w"),
        ],
        0,
        r"mix_all_clean\.csv: numbers with decimal commas \('0,5' in column 'G1_rnaseq'\) and decimal points "
        r"\('1\.5' in column "
        r"'G2_rnaseq'\): read with decimal points, so the comma values become missing; save the table with one "
        r"decimal separator",
    ),
    # issue 19.8: one owner for labels.parquet — `omics labels` refuses to replace the table's labels without
    # --force, and `omics TABLE` (even with --force) leaves the labels of `omics labels` alone
    Case(
        "19.8-labels-over-omics-labels",
        _labels_after_omics,
        2,
        r"omics/labels\.parquet: holds the labels `healnet omics` built \(from \S+study_all_clean\.csv, months, 12 "
        r"patients\); "
        r"pass --force to replace them with the labels of \S+clinical\.tsv \(days\)",
        check=_labels_unit("months", "omics_work"),
    ),
    Case(
        "19.8-omics-table-keeps-labels-of-omics-labels",
        _omics_after_labels,
        0,
        r"labels: omics/labels\.parquet belongs to `healnet omics labels` \(from \S+clinical\.tsv, days, 12 "
        r"patients\); "
        r"the tables' survival columns are not used",
        check=_labels_unit("days", "own"),
    ),
    # issue 19.4: a SLURM array that cannot be mapped to shards
    Case(
        "19.4-uneven-array",
        _tile,
        2,
        r"not evenly spaced.*--array=0-2 .*--shard I/N",
        env={
            "SLURM_ARRAY_TASK_ID": "2",
            "SLURM_ARRAY_TASK_MIN": "1",
            "SLURM_ARRAY_TASK_MAX": "5",
            "SLURM_ARRAY_TASK_COUNT": "3",
            "SLURM_ARRAY_TASK_STEP": "1",
        },
    ),  # fmt: skip
    # issue 17: one --on-error check for every stage
    Case(
        "17-on-error-tile",
        lambda i: _tile(i, "--on-error", "skip"),
        2,
        r"--on-error 'skip' is not one of: continue, fail",
    ),
    Case(
        "17-on-error-extract",
        lambda i: ["extract", "-w", str(i.tiled()), *EXTRACT_ARGS, "--on-error", "stop"],
        2,
        r"--on-error 'stop' is not one of: continue, fail",
    ),
    Case(
        "17-on-error-omics",
        lambda i: ["omics", str(i.table()), "-w", str(i.root / "w"), "--on-error", "halt"],
        2,
        r"--on-error 'halt' is not one of: continue, fail",
    ),
    Case(
        "17-features-name",
        lambda i: ["extract", "-w", str(i.tiled()), *EXTRACT_ARGS, "--name", "my features"],
        2,
        r"--name 'my features': use letters, digits, '\.', '_' or '-' \(it names the folder features/NAME/\)",
    ),
    # issue 16: cox-clinical is a model of the clinical covariates alone; a coxnet option with a typo
    Case(
        "16-cox-clinical-with-omics",
        lambda i: [
            "train",
            *train_args(i.omics(), i.root / "cc")[:-2],
            "--out",
            str(i.root / "cc"),
            "--model",
            "cox-clinical",
            "--modalities",
            "rna,clinical",
        ],
        2,
        r"--model cox-clinical takes --modalities clinical only \(got rna,clinical\)",
    ),
    Case(
        "16-coxnet-bad-select",
        lambda i: ["train", *train_args(i.omics(), i.root / "cx"), "--model", "coxnet", "--hparam", "select=best"],
        2,
        r"select must be one of \['cv-min', 'cv-1se', 'mid-path'\], got 'best'",
    ),
    # issue 19.9: evaluate --out into a user's folder would delete top_*.png and overwrite summary.md
    Case(
        "19.9-evaluate-out-user-folder",
        lambda i: _user_folder_out(i),
        2,
        r"--out \S*my_figures: not empty \(summary\.md, top_rna\.png\) and not written by `healnet evaluate`",
        check=lambda i, o: _user_files_intact(i),
    ),
]


def _user_folder_out(inputs: Inputs) -> list[str]:
    folder = _mkdir(inputs.root / "my_figures")
    (folder / "top_rna.png").write_bytes(b"\x89PNG my figure")
    (folder / "summary.md").write_text("# my notes\n")
    return ["evaluate", str(inputs.trained()), "--out", str(folder), "--bootstrap", "0"]


def _user_files_intact(inputs: Inputs) -> None:
    folder = inputs.root / "my_figures"
    assert sorted(p.name for p in folder.iterdir()) == ["summary.md", "top_rna.png"]
    assert (folder / "summary.md").read_text() == "# my notes\n"


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- the harness ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("originals")


def _flat(text: str) -> str:
    """The output as one line: usage errors come in a box that wraps the message."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file() and p.name.endswith(ARTIFACTS) and "slides" not in p.parts
    }


@contextmanager
def _unwritable(paths: list[Path]) -> Iterator[None]:
    """Make ``paths`` unwritable: chmod for a normal user, the immutable attribute for root
    (whom file modes do not stop); skips where neither works."""
    done: list[Path] = []
    try:
        for path in paths:
            if os.geteuid() != 0:
                path.chmod(0o555)
            elif subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
                pytest.skip("running as root on a file system without chattr +i: cannot make a folder read-only")
            done.append(path)
        yield
    finally:
        for path in done:
            if os.geteuid() != 0:
                path.chmod(0o755)
            else:
                subprocess.run(["chattr", "-i", str(path)], check=True)


def _unprivileged(argv: list[str], env: dict[str, str]) -> Outcome:
    """Run as a user that file modes apply to: as root, in a user namespace (``unshare --user``)."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        if (
            shutil.which("unshare") is None
            or subprocess.run(["unshare", "--user", "true"], capture_output=True).returncode
        ):
            pytest.skip("running as root without user namespaces: file modes cannot be tested")
        prefix = ["unshare", "--user"]
    result = run_healnet(argv, env=env, prefix=prefix)
    return Outcome(result.returncode, result.stdout + result.stderr, result.stdout)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, originals: Path) -> None:
    inputs = Inputs(tmp_path, originals)
    argv = case.build(inputs)
    before = _digests(tmp_path)
    with pytest.MonkeyPatch.context() as monkeypatch, _unwritable(case.read_only(inputs) if case.read_only else []):
        if case.patch is not None:
            case.patch(monkeypatch, inputs)
        outcome = _unprivileged(argv, case.env) if case.unprivileged else _invoke(argv, env=case.env)
    assert outcome.exit_code == case.exit_code, outcome.output
    assert re.search(case.message, _flat(outcome.output)), outcome.output
    assert "Traceback" not in outcome.output
    after = _digests(tmp_path)
    assert {k: after.get(k) for k in before} == before  # earlier artifacts intact
    if case.check is not None:
        case.check(inputs, outcome)
