"""Run tshark's Follow TCP Stream and parse it: the independent reference for the tests.

``follow(path)`` runs tshark once per batch of streams (``-z follow,tcp,raw,N`` for many
N in one run, since starting tshark dominates) and returns, per tshark stream index, its
two nodes and the bytes each sent. The raw format is one hex line per chunk, indented
with a tab when node 1 sent it.
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass, field

from tcptable import require_tshark

SEPARATOR = "=" * 67
BATCH = 200


@dataclass
class Stream:
    index: int
    node0: tuple[str, int]
    node1: tuple[str, int]
    sent: dict[int, bytes] = field(default_factory=lambda: {0: b"", 1: b""})

    def bytes_from(self, endpoint: tuple[str, int]) -> bytes:
        return self.sent[0] if endpoint == self.node0 else self.sent[1]


def _endpoint(text: str) -> tuple[str, int]:
    host, port = text.strip().rsplit(":", 1)
    host = host.strip("[]")
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        pass
    return host, int(port)


def stream_ids(path: str) -> list[int]:
    out = subprocess.run(
        [require_tshark(), "-r", path, "-Y", "tcp", "-T", "fields", "-e", "tcp.stream"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    ).stdout
    return sorted({int(x) for x in out.split() if x.strip()})


def follow(path: str) -> dict[int, Stream]:
    ids = stream_ids(path)
    result: dict[int, Stream] = {}
    for i in range(0, len(ids), BATCH):
        args = [require_tshark(), "-r", path, "-q"]
        for sid in ids[i : i + BATCH]:
            args += ["-z", f"follow,tcp,raw,{sid}"]
        text = subprocess.run(args, capture_output=True, text=True, check=False, timeout=300).stdout
        for block in text.split(SEPARATOR + "\nFollow: tcp,raw\n")[1:]:
            lines = block.split("\n")
            sid = int(lines[0].split()[-1])
            s = Stream(
                sid, _endpoint(lines[1].split(": ", 1)[1]), _endpoint(lines[2].split(": ", 1)[1])
            )
            for line in lines[3:]:
                if line.startswith(SEPARATOR):
                    break
                if line.strip():
                    s.sent[1 if line.startswith("\t") else 0] += bytes.fromhex(line.strip())
            result[sid] = s
    return result
