"""Exceptions and exit codes shared by every stage.

Exit codes: 0 all items done, 3 some items failed (outputs usable), 2 usage or input error before any
work, 1 failure (unexpected, or a full disk), 130 interrupted (SIGINT), 143 terminated (SIGTERM).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CRASH = 1
EXIT_INPUT = 2
EXIT_PARTIAL = 3
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class HealnetError(Exception):
    """Base class of the errors healnet reports as one readable line (no traceback)."""

    exit_code = EXIT_CRASH


class InputError(HealnetError, ValueError):
    """Bad usage or input detected before any work: a missing path, a malformed table, a bad option.

    The message names the file or option, the problem and the fix.
    """

    exit_code = EXIT_INPUT


class ItemError(HealnetError):
    """One item of a batch (a slide, a fold) failed; the batch goes on and the reason is recorded."""

    exit_code = EXIT_PARTIAL


class DiskFullError(HealnetError):
    """A write failed because the file system (or the user's quota) is full.

    The batch stops at once (every further item would fail too); finished items are kept, and a
    rerun after freeing space resumes. The message names the path and the free space.
    """

    exit_code = EXIT_CRASH

    def __init__(self, message: str, *, path: str = "", free_bytes: int | None = None):
        super().__init__(message)
        self.path = path
        self.free_bytes = free_bytes


class Interrupted(KeyboardInterrupt):
    """SIGTERM (SLURM at walltime, ``scancel``) or SIGINT, raised in the main thread so that
    ``finally`` blocks release locks; the CLI exits 128 + the signal number (143, 130)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def one_line(exc: BaseException) -> str:
    """A single-line description of ``exc`` (type name added for unexpected exceptions)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, HealnetError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
