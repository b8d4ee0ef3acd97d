"""Run pipeline steps as real ``healnet`` commands in subprocesses, timed and logged.

The demo calls the CLI exactly as a user would (``python -m healnet_cli <command> ...``), so it
exercises the commands, their option parsing, their exit codes and their on-disk artifacts, never
the stages' internals.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from healnet_cli.core.errors import HealnetError

#: Environment variables a child keeps from the caller's ``HEALNET_*`` set (the rest would
#: silently change the demo's options: ``HEALNET_CONFIG``, ``HEALNET_TRAIN_EPOCHS``, ...).
KEPT_HEALNET_VARS = ("HEALNET_DEBUG",)
TAIL_LINES = 25


@dataclass(frozen=True)
class Step:
    """One pipeline command: ``healnet <argv...>``, with a short name for logs and timings."""

    name: str
    argv: tuple[str, ...]
    what: str = ""

    @property
    def command(self) -> str:
        """The step as the shell command a user would type."""
        return "healnet " + " ".join(shlex.quote(a) for a in self.argv)


@dataclass
class StepResult:
    """A finished step: exit code, wall time and the log file holding its output."""

    step: Step
    returncode: int
    seconds: float
    log_path: Path
    output_tail: list[str] = field(default_factory=list)


class DemoStepError(HealnetError):
    """A pipeline step exited with an error; carries the command and its output tail."""

    def __init__(self, result: StepResult) -> None:
        self.result = result
        super().__init__(
            f"step {result.step.name!r} failed with exit code {result.returncode}: {result.step.command} "
            f"(log: {result.log_path})"
        )


def child_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a step: the caller's, offline, without option-changing ``HEALNET_*``."""
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if not k.startswith("HEALNET_") or k in KEPT_HEALNET_VARS
    }
    env.setdefault("HF_HUB_OFFLINE", "1")
    # the demo's models are tiny: one thread per process avoids oversubscribing small machines
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def default_launcher() -> tuple[str, ...]:
    """``python -m healnet_cli`` with the running interpreter."""
    return (sys.executable, "-m", "healnet_cli")


def run_step(
    step: Step,
    *,
    log_path: str | os.PathLike[str],
    launcher: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> StepResult:
    """Run one step, stdout and stderr into ``log_path``; return its result (never raises on failure).

    Parameters
    ----------
    step
        The command to run.
    log_path
        File receiving the command line and the combined output.
    launcher
        The program prefix (default ``python -m healnet_cli``).
    env
        Environment (default :func:`child_env`).
    cwd
        Working directory of the child.

    Returns
    -------
    StepResult
    """
    log = Path(log_path)
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [*(launcher or default_launcher()), *step.argv]
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        handle.write(f"$ {step.command}\n")
        handle.flush()
        try:
            completed = subprocess.run(
                argv,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else child_env(),
                cwd=cwd,
                check=False,
            )
            code = completed.returncode
        except OSError as exc:
            handle.write(f"cannot start {argv[0]}: {exc}\n")
            code = 127
    seconds = time.perf_counter() - start
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    return StepResult(step, code, seconds, log, lines[-TAIL_LINES:])
