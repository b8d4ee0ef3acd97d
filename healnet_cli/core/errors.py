"""Exceptions and exit codes shared by every stage.

Exit codes: 0 all items done, 3 some items failed (outputs usable), 2 usage or input error before any
work, 1 unexpected failure.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CRASH = 1
EXIT_INPUT = 2
EXIT_PARTIAL = 3


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


def one_line(exc: BaseException) -> str:
    """A single-line description of ``exc`` (type name added for unexpected exceptions)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, HealnetError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
