"""Console output: rich progress bars on a terminal, plain periodic log lines otherwise.

Messages go to stderr; stdout is reserved for ``--json`` summaries so scripts can parse it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import IO, Any, TypeVar

T = TypeVar("T")
#: Width of the progress bar on a terminal (characters).
BAR_WIDTH = 16


def json_result(payload: dict[str, Any], code: int) -> dict[str, Any]:
    """``payload`` with ``ok`` (exit code 0) and ``exit_code``: what a ``--json`` summary or error carries."""
    return {**payload, "ok": code == 0, "exit_code": code}


class Console:
    """Where a stage reports progress, warnings and its summary.

    Parameters
    ----------
    quiet
        Only warnings and errors.
    json_output
        Print the final summary as JSON on stdout (human messages still go to stderr).
    log_every_s
        Interval of plain progress lines when stderr is not a terminal (SLURM log files).
    """

    def __init__(
        self,
        *,
        quiet: bool = False,
        json_output: bool = False,
        log_every_s: float = 30.0,
        stream: IO[str] | None = None,
        out: IO[str] | None = None,
    ):
        self.quiet = quiet
        self.json_output = json_output
        self.log_every_s = log_every_s
        self._stream = stream
        self._out = out

    @property
    def stream(self) -> IO[str]:
        return self._stream if self._stream is not None else sys.stderr

    @property
    def out(self) -> IO[str]:
        return self._out if self._out is not None else sys.stdout

    @property
    def interactive(self) -> bool:
        return not self.quiet and hasattr(self.stream, "isatty") and self.stream.isatty()

    def info(self, message: str) -> None:
        if not self.quiet:
            print(message, file=self.stream, flush=True)

    def warn(self, message: str) -> None:
        print(f"warning: {message}", file=self.stream, flush=True)

    def error(self, message: str) -> None:
        print(f"error: {message}", file=self.stream, flush=True)

    def emit_json(self, payload: Any) -> None:
        """Print ``payload`` as JSON on stdout."""
        from healnet_cli.core.atomic import json_text

        print(json_text(payload, indent=2), file=self.out, flush=True)

    def track(
        self,
        items: Iterable[T],
        *,
        total: int | None = None,
        description: str = "",
        unit: str = "",
        weight: Callable[[T], int] | None = None,
        extra: Callable[[], str] | None = None,
        completed: int = 0,
    ) -> Generator[T, None, None]:
        """Iterate ``items`` with a progress bar (terminal) or a log line every ``log_every_s``.

        ``weight(item)`` counts each item as that many ``unit`` (e.g. the patches of a batch), so
        ``total`` is in that unit; ``extra()`` is a short status shown beside the count (e.g.
        ``"3/10 slides"``), read after each item; ``completed`` units were done before (a resume).
        Close the iterator (``contextlib.closing``) when leaving it early.
        """
        if total is None and hasattr(items, "__len__"):
            total = len(items) + completed  # type: ignore[arg-type]
        if self.interactive:
            yield from self._track_rich(items, total, description, unit, weight, extra, completed)
            return
        start = last = time.monotonic()
        done = completed
        for item in items:
            yield item
            done += weight(item) if weight is not None else 1
            now = time.monotonic()
            if not self.quiet and now - last >= self.log_every_s:
                last = now
                rate = (done - completed) / max(now - start, 1e-9)
                of = f"/{total}" if total else ""
                eta = f", eta {(total - done) / rate:.0f}s" if total and rate > 0 else ""
                what = f" {unit}" if unit else ""
                tail = f", {extra()}" if extra is not None else ""
                self.info(f"{description}: {done}{of}{what} ({rate:.2f}{what}/s{eta}){tail}")

    def _track_rich(
        self,
        items: Iterable[T],
        total: int | None,
        description: str,
        unit: str,
        weight: Callable[[T], int] | None,
        extra: Callable[[], str] | None,
        completed: int,
    ) -> Iterator[T]:
        from rich.console import Console as RichConsole
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        terminal = RichConsole(file=self.stream)
        # What the other columns take (the bar: BAR_WIDTH); the status gets the rest of the line,
        # cut with "…", so that a narrow terminal never squeezes the bar or the count instead.
        digits = len(str(total if total is not None else 0))
        room = terminal.width - (len(description) + BAR_WIDTH + 2 * digits + 1 + len(unit) + 7 + 5)

        def status() -> str:
            text = extra() if extra is not None else ""
            return text if len(text) <= room else text[: max(0, room - 1)] + "…"

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=BAR_WIDTH),
            MofNCompleteColumn(),
            TextColumn(unit),
            TimeRemainingColumn(),
            TextColumn("{task.fields[extra]}"),
            console=terminal,
            transient=True,
        ) as progress:
            task = progress.add_task(description, total=total, completed=completed, extra=status())
            for item in items:
                yield item
                progress.update(task, advance=weight(item) if weight is not None else 1, extra=status())
