"""Exceptions and warnings raised by pcapflows.

Only the capture's own header can make a read fail: everything after it (damaged records,
packets we cannot decode, truncated files, a file object closed or failing mid-read) is
counted in :class:`pcapflows.stats.ReadStats` and reported with :class:`PcapflowsWarning`,
so that a damaged capture still yields every flow that can be recovered.
"""

from __future__ import annotations


class PcapflowsError(Exception):
    """Base class of every exception pcapflows raises on purpose."""


class CaptureError(PcapflowsError):
    """The input is not a capture format pcapflows can read.

    The message names the file and what was found instead (for example a Solaris snoop
    file, a zstd-compressed file, an empty file, a file object opened in text mode).
    """


class PcapflowsWarning(UserWarning):
    """Something in the capture was skipped or damaged; the read went on."""


class FlowFileError(PcapflowsError):
    """A mitmproxy flow file could not be read (or is not one).

    The message is one line: the file, what was wrong and, for damage inside the file,
    which flow and at which byte offset, so that a command line can print it as it is.
    """


#: The one line that says how to get the optional mitmproxy integration.
MITMPROXY_HINT = "pip install 'pcapflows[mitmproxy]'"


class MitmproxyMissing(PcapflowsError, ImportError):
    """mitmproxy (11.x) is needed for this and is not installed, or is too old.

    Only :func:`pcapflows.to_mitmproxy`, :func:`pcapflows.replay` and ``pcapflows -s``
    need it; everything else works without. An :class:`ImportError`, so code that
    already guards optional imports catches it; the message says what to install.
    """


class AddonError(PcapflowsError):
    """An addon or script could not be started: no flow was replayed.

    Raised by :func:`pcapflows.replay` when loading or configuring an addon logged an
    error (a script with a syntax error, one that fails on import, a duplicate or a
    missing script file). mitmproxy has already logged the error with its traceback,
    as mitmdump would; ``details`` keeps those formatted records.
    """

    def __init__(self, message: str, details: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.details = details
