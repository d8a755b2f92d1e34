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
