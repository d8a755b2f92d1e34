"""The ``pcapflows`` command (also ``python -m pcapflows``).

``pcapflows list|follow|export|stats ...``: one module per subcommand
(:mod:`~pcapflows.cli.listing`, :mod:`~pcapflows.cli.follow`,
:mod:`~pcapflows.cli.export`, :mod:`~pcapflows.cli.stats`), each with
``add_arguments(parser)`` and ``run(args) -> exit code``, registered in
:data:`SUBCOMMANDS`. Only the module of the subcommand being run is imported, so
start-up stays fast.

``pcapflows CAPTURE [options]`` (no subcommand) is ``list`` (:mod:`~pcapflows.cli.legacy`
maps the options from before subcommands: ``--follow N``, ``-w OUT``, ``-s SCRIPT``,
``--stats``), so that scripts written for it keep working.

Errors are one line on standard error and a non-zero exit code
(:mod:`~pcapflows.cli.errors`); output that cannot be written is handled here, once,
for every subcommand.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from pcapflows.cli.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_CODES_HELP,
    EXIT_OK,
    EXIT_OUTPUT,
    EXIT_USAGE,
    CliError,
)


@dataclass(frozen=True)
class Subcommand:
    """One subcommand: where its code is, and the names of its two functions."""

    name: str
    module: str
    summary: str
    add: str = "add_arguments"
    run: str = "run"

    def load(
        self,
    ) -> tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]:
        mod = importlib.import_module(self.module)
        return getattr(mod, self.add), getattr(mod, self.run)

    def describe(self) -> tuple[str, str]:
        """The description and the examples ``--help`` shows (module attributes
        ``DESCRIPTION`` and ``EXAMPLES``, the module docstring's first line if none)."""
        mod = importlib.import_module(self.module)
        doc = (mod.__doc__ or self.summary).strip().split("\n\n")[0]
        return getattr(mod, "DESCRIPTION", doc), getattr(mod, "EXAMPLES", "")


#: The subcommands, in the order ``pcapflows --help`` lists them. A subcommand
#: elsewhere in the package is one line here.
SUBCOMMANDS: dict[str, Subcommand] = {
    s.name: s
    for s in (
        Subcommand("list", "pcapflows.cli.listing", "one line per TCP connection"),
        Subcommand("follow", "pcapflows.cli.follow", "one conversation, as Follow TCP Stream"),
        Subcommand("export", "pcapflows.cli.export", "JSON lines, a mitmproxy file, or files"),
        Subcommand("stats", "pcapflows.cli.stats", "totals, endings, talkers, damage"),
        Subcommand(
            "convert",
            "pcapflows.convert",
            "mitmproxy flow file to capture (for Wireshark), and back",
            "add_convert_arguments",
            "run_convert",
        ),
    )
}

TOP_EXAMPLES = """\
examples:
  pcapflows list captures/demo.pcapng
  pcapflows follow captures/demo.pcapng 2
  pcapflows export captures/demo.pcapng --format jsonl -o flows.jsonl
  pcapflows stats captures/demo.pcapng
  pcapflows CAPTURE [--follow N] [-w OUT] [-s SCRIPT]   (list, and the earlier options)

'pcapflows SUBCOMMAND --help' shows each subcommand's options and their defaults.
"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written (raw epilog); defaults appended where they say
    something (not for options that default to nothing)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" not in text
            and "(default" not in text
            and default not in (None, False, [], argparse.SUPPRESS)
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, naming the option of another
    subcommand when that is what was given (``list --hex``)."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            extra = message.split(":", 1)[1].split()
            options = [a.split("=", 1)[0] for a in extra if a.startswith("-")]
            where = self.prog.split()[-1]
            hinted = [o for o in options if o in _HINTS]
            elsewhere = _owners(options)
            if hinted:
                message = f"{hinted[0]} does nothing with {where} ({_HINTS[hinted[0]]})"
            elif elsewhere:
                opt, owners = next(iter(elsewhere.items()))
                message = (
                    f"{opt} does nothing with {where} (it is an option of {' and '.join(owners)})"
                )
        raise CliError(f"{self.prog}: error: {message} (see {self.prog} --help)")


#: Options of the command before subcommands, and where they went.
_HINTS = {
    "--hex": "hex dumps are for one conversation: pcapflows follow CAPTURE FLOW --format hex",
    "--follow": "use pcapflows follow CAPTURE FLOW",
    "--stats": "use -v, or pcapflows stats CAPTURE",
    "-w": "use pcapflows list CAPTURE -w OUT, or export CAPTURE --format mitm -o OUT",
    "--write": "use pcapflows list CAPTURE -w OUT, or export CAPTURE --format mitm -o OUT",
}


def _owners(options: list[str]) -> dict[str, list[str]]:
    """Which other subcommands accept these options."""
    found: dict[str, list[str]] = {}
    if not options:
        return found
    for sub in SUBCOMMANDS.values():
        try:
            parser = _subparser(sub)
        except Exception:  # a subcommand that fails to load must not hide the error
            continue
        known = {s for a in parser._actions for s in a.option_strings}
        for opt in options:
            if opt in known:
                found.setdefault(opt, []).append(sub.name)
    return found


def _subparser(sub: Subcommand, prog: str = "pcapflows") -> argparse.ArgumentParser:
    add, _ = sub.load()
    description, examples = sub.describe()
    parser = Parser(
        prog=f"{prog} {sub.name}",
        description=textwrap.fill(description, 79),
        epilog=(examples + "\n\n" if examples else "") + textwrap.fill(EXIT_CODES_HELP, 79),
        formatter_class=HelpFormatter,
    )
    add(parser)
    return parser


def _top_parser() -> argparse.ArgumentParser:
    from pcapflows import __version__

    lines = "\n".join(f"  {s.name:<8} {s.summary}" for s in SUBCOMMANDS.values())
    p = Parser(
        prog="pcapflows",
        usage="pcapflows SUBCOMMAND [options] CAPTURE...\n       pcapflows CAPTURE [options]",
        description="Reassemble the TCP conversations of pcap and pcapng captures.\n\n"
        f"subcommands:\n{lines}",
        epilog=TOP_EXAMPLES + "\n" + textwrap.fill(EXIT_CODES_HELP, 79),
        formatter_class=HelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"pcapflows {__version__}")
    return p


def run_subcommand(name: str, argv: Sequence[str]) -> int:
    """Parse ``argv`` (what follows the subcommand's name) and run subcommand ``name``."""
    sub = SUBCOMMANDS[name]
    args = _subparser(sub).parse_args(argv)
    _, run = sub.load()
    return run(args)


def _run(argv: Sequence[str]) -> int:
    if argv and argv[0] in SUBCOMMANDS:
        return run_subcommand(argv[0], argv[1:])
    if argv and argv[0] in ("-h", "--help"):
        from pcapflows.cli.legacy import legacy_parser

        print(_top_parser().format_help())
        print("without a subcommand (list, and the options from before subcommands):\n")
        print(legacy_parser().format_help(), end="")
        return EXIT_OK
    if not argv or argv[0] == "--version":
        parser = _top_parser()
        parser.parse_args(argv)  # prints the version and exits
        raise CliError("pcapflows: error: give a subcommand or a capture (see pcapflows --help)")
    from pcapflows.cli.legacy import run_legacy

    return run_legacy(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit code (also used as the process exit code).

    Writing the output can fail: the disk is full (a one-line error, exit 4) or the
    reader of a pipe went away (quietly, exit 141). The output is flushed here, inside
    the guard, so that neither failure is left for the interpreter's exit to report.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            code = _run(args)
        except CliError as exc:
            msg = str(exc)
            if not msg.startswith("pcapflows"):
                msg = f"pcapflows: error: {msg}"
            print(msg, file=sys.stderr)
            code = exc.code
        except SystemExit as exc:  # argparse's --help and --version
            code = exc.code if isinstance(exc.code, int) else EXIT_USAGE if exc.code else 0
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:
        _detach_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        _detach_stdout()
        try:
            print(f"pcapflows: error: cannot write output: {exc.strerror or exc}", file=sys.stderr)
        except OSError:
            pass  # standard error is gone too: the exit code still says it
        return EXIT_OUTPUT
    return code


def _detach_stdout() -> None:
    """Point standard output at the null device after a write to it failed.

    What could not be written stays in Python's buffer, and the interpreter flushes it
    again at exit: into a closed pipe or a full disk, that prints "Exception ignored"
    with a traceback after we have exited cleanly. The null device swallows it.
    """
    try:
        fd = sys.stdout.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return  # not a real file (an in-process caller's StringIO): nothing at exit
    try:
        os.dup2(null, fd)
    except OSError:
        pass
    finally:
        os.close(null)


__all__ = ["EXIT_OK", "SUBCOMMANDS", "Subcommand", "main"]
