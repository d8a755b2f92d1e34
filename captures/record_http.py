#!/usr/bin/env python3
"""Record ``loopback_http11.pcap``: real HTTP/1.1 traffic on 127.0.0.1, with the
endpoints' own record of it as the truth (``loopback_http11.truth.json``).

    sudo python captures/record_http.py          # needs dumpcap on lo (root)

A real server (:mod:`http.server`'s ``ThreadingHTTPServer``, HTTP/1.1) and a socket
client talk over four connections, each showing what issue 12 asks the HTTP layer
to read, as real stacks put it on the wire:

1. keep-alive then pipelining: ``GET /keep/1``, its response, then ``GET /keep/2``,
   ``GET /chunked`` (three chunks and a trailer) and ``GET /gzip`` (``Content-Encoding:
   gzip``) sent in one write before any response;
2. ``POST /upload`` with ``Expect: 100-continue``: the client sends the body only after
   the server's ``100 Continue`` (http.server sends it by itself);
3. ``GET /ws`` upgraded to WebSocket (101): the client sends masked frames (a text
   message, a binary one, a text message in two fragments, a close 1000 "bye"), the
   server echoes each unmasked and answers the close;
4. ``CONNECT 127.0.0.1:E``: the server opens a connection to an echo server on port
   E, answers 200 and relays; the client sends bytes through the tunnel and reads the
   echo (the relay's own connection to the echo server is in the capture too: TCP).

The truth is what each endpoint did, not what a parser made of the capture: the
client writes down every byte it sent and received per connection and what it sent
in each request; the server writes down each response as it produced it (status, the
body before chunking and the body before gzip, the interim 100) and every WebSocket
frame it echoed. Times are not part of the truth (the sockets do not know capture
times). Not reproducible byte for byte (ports, dates, WebSocket masks); the capture is
checked (every connection's SYN and FIN recorded) and retried with a longer pause otherwise.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.server
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CAPTURE = "loopback_http11.pcap"
TRUTH = "loopback_http11.truth.json"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT = b"".join(
    b"line %d of a compressible body, the same words again and again\n" % i for i in range(40)
)

#: What the server produced, by client port: a list of responses (dicts) and, for
#: WebSocket, the frames it echoed.
SERVED: dict[int, dict[str, Any]] = {}
LOCK = threading.Lock()


def _served(port: int) -> dict[str, Any]:
    with LOCK:
        return SERVED.setdefault(port, {"responses": [], "ws_echoed": [], "tunnel": None})


class Handler(http.server.BaseHTTPRequestHandler):
    """Each path one behaviour; every response is recorded as it is produced."""

    protocol_version = "HTTP/1.1"
    server_version = "record_http/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _record(self, status: int, raw: bytes, content: bytes, **more: Any) -> None:
        _served(self.client_address[1])["responses"].append(
            {"status": status, "raw_hex": raw.hex(), "content_hex": content.hex(), **more}
        )

    def _plain(self, body: bytes, ctype: str = "text/plain") -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self._record(200, body, body)

    def do_GET(self) -> None:
        if self.path.startswith("/keep/"):
            self._plain(f"keep-alive response {self.path[6:]}\n".encode())
        elif self.path == "/chunked":
            parts = [TEXT[:100], TEXT[100:350], TEXT[350:400]]
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Trailer", "X-Parts")
            self.end_headers()
            for p in parts:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(p), p))
            self.wfile.write(b"0\r\nX-Parts: 3\r\n\r\n")
            body = b"".join(parts)
            self._record(200, body, body, trailers=[["X-Parts", "3"]])
        elif self.path == "/gzip":
            packed = gzip.compress(TEXT, mtime=0)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(packed)))
            self.end_headers()
            self.wfile.write(packed)
            self._record(200, packed, TEXT)
        elif self.path == "/ws":
            self._websocket()
        else:
            self.send_error(404)

    def do_POST(self) -> None:
        # http.server has already sent "100 Continue" (handle_expect_100) when asked.
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self._plain(
            b"received %d bytes, sha256 %s\n"
            % (len(body), hashlib.sha256(body).hexdigest().encode())
        )
        _served(self.client_address[1])["responses"][-1]["interim"] = [100]

    def _websocket(self) -> None:
        key = self.headers["Sec-WebSocket-Key"].encode()
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self._record(101, b"", b"")
        echoed = _served(self.client_address[1])["ws_echoed"]
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                break
            fin_op, length = head[0], head[1] & 0x7F
            if length == 126:
                length = struct.unpack("!H", self.rfile.read(2))[0]
            mask = self.rfile.read(4)
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
            frame = bytes([fin_op, len(data)]) + data  # unmasked, short payloads only
            self.wfile.write(frame)
            self.wfile.flush()
            echoed.append([fin_op, data.hex()])
            if fin_op & 0x0F == 8:
                break
        self.close_connection = True

    def do_CONNECT(self) -> None:
        host, _, port = self.path.rpartition(":")
        upstream = socket.create_connection((host, int(port)))
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        self._record(200, b"", b"")
        relayed = bytearray()
        conn = self.connection
        conn.settimeout(5)
        upstream.settimeout(5)
        while data := conn.recv(65536):
            upstream.sendall(data)
            while len(echo := upstream.recv(65536)) < len(data):
                data = data[len(echo) :]
                conn.sendall(echo)
                relayed += echo
            conn.sendall(echo)
            relayed += echo
        upstream.close()
        _served(self.client_address[1])["tunnel"] = relayed.hex()
        self.close_connection = True


def _echo_server(sock: socket.socket) -> None:
    while True:
        try:
            c, _ = sock.accept()
        except OSError:
            return
        with c:
            while data := c.recv(65536):
                c.sendall(data)


class Client:
    """One connection, keeping every byte sent and received."""

    def __init__(self, port: int) -> None:
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.settimeout(5)
        self.port = self.s.getsockname()[1]
        self.sent = bytearray()
        self.received = bytearray()
        self.requests: list[dict[str, Any]] = []

    def send(self, data: bytes) -> None:
        self.s.sendall(data)
        self.sent += data

    def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes = b"",
        send_body: bool = True,
    ) -> bytes:
        head = (
            f"{method} {target} HTTP/1.1\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers)
            + "\r\n"
        )
        self.requests.append(
            {"method": method, "target": target, "headers": headers, "body_hex": body.hex()}
        )
        return head.encode() + (body if send_body else b"")

    def until(self, marker: bytes) -> None:
        while marker not in self.received:
            chunk = self.s.recv(65536)
            if not chunk:
                raise SystemExit(f"connection closed before {marker!r}")
            self.received += chunk

    def finish(self) -> dict[str, Any]:
        self.s.shutdown(socket.SHUT_WR)
        while chunk := self.s.recv(65536):
            self.received += chunk
        self.s.close()
        return {
            "client_port": self.port,
            "sent_hex": self.sent.hex(),
            "received_hex": self.received.hex(),
            "requests": self.requests,
        }


def _ws_frame(opcode: int, data: bytes, fin: bool = True) -> bytes:
    mask = os.urandom(4)
    return (
        bytes([(0x80 if fin else 0) | opcode, 0x80 | len(data)])
        + mask
        + bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    )


def _converse(port: int, echo_port: int) -> list[dict[str, Any]]:
    host = [("Host", f"127.0.0.1:{port}")]
    out = []
    # 1. keep-alive, then three pipelined requests in one write.
    c = Client(port)
    c.send(c.request("GET", "/keep/1", host))
    c.until(b"keep-alive response 1\n")
    c.send(b"".join(c.request("GET", p, host) for p in ("/keep/2", "/chunked", "/gzip")))
    time.sleep(0.2)
    out.append(c.finish())
    # 2. 100-continue.
    c = Client(port)
    body = b"field=value&" * 50
    headers = [
        *host,
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Content-Length", str(len(body))),
        ("Expect", "100-continue"),
    ]
    c.send(c.request("POST", "/upload", headers, body, send_body=False))
    c.until(b"100 Continue\r\n\r\n")
    c.send(body)
    c.until(b"sha256")
    out.append(c.finish())
    # 3. WebSocket echo.
    c = Client(port)
    key = base64.b64encode(os.urandom(16)).decode()
    ws_headers = [
        *host,
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ]
    c.send(c.request("GET", "/ws", ws_headers))
    c.until(b"\r\n\r\n")
    frames = [
        (1, b"hello, echo", True),
        (2, bytes(range(20)), True),
        (1, b"first half, ", False),
        (0, b"second half", True),
        (8, struct.pack("!H", 1000) + b"bye", True),
    ]
    for opcode, data, fin in frames:
        c.send(_ws_frame(opcode, data, fin))
        time.sleep(0.02)
    record = c.finish()
    record["ws_sent"] = [[op, d.hex(), fin] for op, d, fin in frames]
    out.append(record)
    # 4. CONNECT, then bytes through the tunnel.
    c = Client(port)
    target = f"127.0.0.1:{echo_port}"
    c.send(c.request("CONNECT", target, [("Host", target)]))
    c.until(b"\r\n\r\n")
    tunnelled = b"not HTTP: bytes through the tunnel\x00\x01\x02"
    c.send(tunnelled)
    c.until(tunnelled)
    record = c.finish()
    record["tunnel_hex"] = tunnelled.hex()
    out.append(record)
    return out


def _syn_fin_ports(data: bytes) -> tuple[set[int], set[int]]:
    syns: set[int] = set()
    fins: set[int] = set()
    off = 24
    while off + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, off + 8)[0]
        ip = data[off + 16 + 14 : off + 16 + caplen]
        off += 16 + caplen
        tcp = ip[(ip[0] & 0x0F) * 4 :]
        sport, flags = struct.unpack_from("!H", tcp)[0], tcp[13]
        if flags & 0x12 == 0x02:
            syns.add(sport)
        if flags & 0x01:
            fins.add(sport)
    return syns, fins


def record(settle: float) -> tuple[bytes, dict[str, Any]]:
    dumpcap = shutil.which("dumpcap")
    if dumpcap is None:
        raise SystemExit("dumpcap not found (Wireshark's capture engine)")
    SERVED.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    echo = socket.socket()
    echo.bind(("127.0.0.1", 0))
    echo.listen()
    echo_port = echo.getsockname()[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    threading.Thread(target=_echo_server, args=(echo,), daemon=True).start()
    with tempfile.TemporaryDirectory() as root:
        Path(root).chmod(0o777)
        pcap = Path(root, CAPTURE)
        # -P: pcap, not pcapng (a plain file for the truth check below).
        dump = subprocess.Popen(
            [
                dumpcap,
                "-q",
                "-P",
                "-i",
                "lo",
                "-w",
                str(pcap),
                "-f",
                f"tcp port {port} or tcp port {echo_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            assert dump.stderr is not None
            while b"Capturing on" not in (line := dump.stderr.readline()):
                if not line:
                    raise SystemExit("dumpcap did not start")
            threading.Thread(target=dump.stderr.read, daemon=True).start()
            time.sleep(settle)
            connections = _converse(port, echo_port)
            time.sleep(1.5)
        finally:
            dump.send_signal(signal.SIGINT)
            dump.wait(10)
            server.shutdown()
            echo.close()
        data = pcap.read_bytes()
    for conn in connections:
        conn["served"] = SERVED.get(conn["client_port"], {})
    truth = {
        "description": __doc__.split("\n\n")[1].replace("\n", " "),
        "server": ["127.0.0.1", port],
        "echo_server": ["127.0.0.1", echo_port],
        "connections": connections,
    }
    syns, fins = _syn_fin_ports(data)
    ports = {c["client_port"] for c in connections}
    if not (ports <= syns and ports <= fins):
        raise RuntimeError("dumpcap missed packets")
    return data, truth


def main() -> int:
    for settle in (1.0, 2.0, 4.0):
        try:
            data, truth = record(settle)
        except RuntimeError:
            continue
        (HERE / CAPTURE).write_bytes(data)
        (HERE / TRUTH).write_text(json.dumps(truth, indent=1) + "\n")
        print(f"wrote {CAPTURE} ({len(data)} bytes) and {TRUTH}")
        return 0
    raise SystemExit("dumpcap missed packets of the conversations")


if __name__ == "__main__":
    sys.exit(main())
