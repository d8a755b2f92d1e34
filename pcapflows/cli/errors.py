"""Exit codes and the one exception every subcommand raises to stop with a message.

One table for all subcommands, so that a script calling ``pcapflows`` can tell a
capture it cannot read (1) from a command line it got wrong (2) whatever the
subcommand; the codes are those of the command before it had subcommands.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

EXIT_OK = 0
#: The input could not be read as a capture (missing, unreadable, not a capture).
EXIT_BAD_INPUT = 1
#: The command line is wrong: a bad option value, a bad filter, an option that does
#: nothing where it was given.
EXIT_USAGE = 2
#: The flow asked for is not in the capture.
EXIT_NO_SUCH_FLOW = 3
#: The output could not be written (a full disk, a file that cannot be created).
EXIT_OUTPUT = 4
#: A ``-s`` script could not be loaded.
EXIT_ADDON = 5
#: 128 + SIGINT (2): what a shell reports for a command stopped by Ctrl-C. The command
#: still prints what it had found before stopping.
EXIT_INTERRUPTED = 130
#: 128 + SIGPIPE (13): what a shell reports for a command stopped by a closed pipe, as
#: ``seq 1000000 | head`` stops; written out because Windows has no SIGPIPE.
EXIT_BROKEN_PIPE = 141

#: The table ``--help`` prints.
EXIT_CODES_HELP = (
    "exit codes: 0 ok, 1 input is not a readable capture, 2 bad command line, "
    "3 no such flow, 4 output could not be written, 5 a -s script could not be loaded, "
    "130 interrupted (Ctrl-C; what was found so far is printed), 141 output pipe closed"
)


class CliError(Exception):
    """Stop the command: ``message`` is printed as one line on standard error, and the
    process exits with ``code``."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def cannot_write(target: str, error: OSError) -> CliError:
    """The error that stops a command whose output file cannot be written."""
    why = error.strerror or error
    return CliError(f"pcapflows: error: cannot write {target}: {why}", EXIT_OUTPUT)


class WriteFailed(Exception):
    """An ``OSError`` of a file a command writes (a flow file, an export), told apart
    from one of standard output, which :func:`pcapflows.cli.main` handles itself (a
    closed pipe quietly, a full disk with one line)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def guarded(target: str, write: Callable[..., T], *args: Any) -> T:
    """``write(*args)`` on output ``target``: an ``OSError`` becomes :class:`WriteFailed`,
    unless the target is standard output (``-``), whose errors go on to ``main``."""
    if target == "-":
        return write(*args)
    try:
        return write(*args)
    except OSError as exc:
        raise WriteFailed(exc) from exc
