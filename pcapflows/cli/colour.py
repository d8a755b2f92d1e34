"""Terminal colour for ``follow``: plain ANSI escape codes.

Two colours and a dim style are all the command needs, so no library: the escapes
below work on every terminal in use (and on Windows 10+ consoles). Colour is on when
standard output is a terminal (never in a pipe or a file), unless ``NO_COLOR`` is set
(https://no-color.org); ``--color always`` forces it, ``--color never`` turns it off.
"""

from __future__ import annotations

import os
from typing import TextIO

#: Wireshark's Follow TCP Stream colours: the client in red, the server in blue.
CLIENT = "\x1b[31m"
SERVER = "\x1b[34m"
NOTE = "\x1b[33m"
RESET = "\x1b[0m"


def wanted(when: str, stream: TextIO) -> bool:
    """Whether to colour output to ``stream`` for ``--color WHEN``."""
    if when == "always":
        return True
    if when == "never" or os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def paint(text: str, colour: str, on: bool) -> str:
    """``text`` in ``colour`` when colour is on."""
    return f"{colour}{text}{RESET}" if on else text
