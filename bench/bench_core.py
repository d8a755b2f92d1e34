#!/usr/bin/env python3
"""Benchmark: pcapflows against tcpflow and a bare dpkt loop, on generated captures.

    python bench/bench_core.py                                   # small and large, 3 rounds
    python bench/bench_core.py --preset small,large,wide --rounds 3 --markdown docs/performance.md
    python bench/bench_core.py --quick                           # captures a tenth the size
    python bench/bench_core.py --preset large,large-x2           # doubling at equal concurrency

Captures come from ``bench/gencap.py`` (seeded, so the same every time) and are cached
under ``--workdir`` (``bench/.cache/`` by default, ignored by git) with their truth.

Each round runs every tool once on every capture, each in its own process, in an order
that rotates from round to round, so that whatever else the machine does falls on all
tools and all captures alike. The tools:

- ``read``: ``pcapflows.read(capture)``, every flow, ``len(content)`` of every message.
- ``cli``: ``python -m pcapflows CAPTURE > /dev/null``, the listing.
- ``tcpflow``: ``tcpflow -r CAPTURE -o DIR`` (the Debian package; installed here with
  apt-get when missing, with sudo when not root; skipped with a note if that fails).
- ``dpkt``: a bare decode loop, ``dpkt.pcap.Reader`` then ``dpkt.ethernet.Ethernet`` per
  record, touching the IP and TCP layers and the payload: no reassembly at all.

Wall time is the process's (start-up included, as tcpflow's is), measured here; peak RSS
is the process's maximum resident set as GNU ``time`` reports it (``%M``). Not from
``os.wait4`` of our own child: a child's ``ru_maxrss`` starts at the resident size of the
process that forked it (the kernel carries the parent's high-water mark over ``exec``),
which for this Python parent is more than tcpflow's whole peak. Without ``/usr/bin/time``
the figure falls back to ``os.wait4`` and the table says so.

Every ``read`` run is checked against the generator's truth: each connection's 4-tuple,
the SHA-256 and length of each direction, the number of messages and their directions
and lengths, how it ended, no gap, no conflict, the packet count, and the payload
delivered and counted as duplicate. The child hashes each flow just after touching it
and times that part on its own; it is subtracted from the run's wall time, so the figure
is the read alone. Any mismatch fails the command (exit status 1) with the details.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import hashlib
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import gencap  # noqa: E402  (beside this file, not a package)

TOOLS = ("read", "cli", "tcpflow", "dpkt")
#: Measured only when named with --tools: events() with messages not kept (every
#: message event touched), checked against the truth's totals.
EXTRA_TOOLS = ("events",)
GNU_TIME = "/usr/bin/time"


# ---------------------------------------------------------------------------------------
# Children: what runs in the measured processes


def child_read(capture: str, summary: str) -> int:
    """Read every flow, touch every message; write a summary line per flow to check."""
    import pcapflows

    check = 0.0
    flows = 0
    clock = time.perf_counter
    reader = pcapflows.read(capture)
    with open(summary, "w") as out:
        for flow in reader:
            touched = 0
            for message in flow.messages:
                touched += len(message.content)
            t0 = clock()
            flows += 1
            hashes = (hashlib.sha256(), hashlib.sha256())
            lengths = [0, 0]
            shape = hashlib.sha256()
            for message in flow.messages:
                side = 0 if message.from_client else 1
                hashes[side].update(message.content)
                lengths[side] += len(message.content)
                shape.update(b"%d," % (len(message.content) * (1 - 2 * side)))
            meta = flow.metadata["pcapflows"]
            closed = meta["closed_by"]
            if closed == "rst":
                closed = "rst_" + str(meta.get("rst_from"))
            elif closed == "end" and meta.get("open_at_end"):
                closed = "open"
            line = {
                "client": list(flow.client_conn.peername or ()),
                "server": list(flow.server_conn.address or ()),
                "client_bytes": lengths[0],
                "client_sha256": hashes[0].hexdigest(),
                "server_bytes": lengths[1],
                "server_sha256": hashes[1].hexdigest(),
                "messages": len(flow.messages),
                "shape": shape.hexdigest()[:16],
                "close": closed,
                "gaps": len(meta["gaps"]),
                "conflicts": len(meta["conflicts"]),
                "touched": touched,
            }
            out.write(json.dumps(line) + "\n")
            check += clock() - t0
    stats = reader.stats
    result = {
        "check_seconds": check,
        "flows": flows,
        "packets": stats.packets,
        "payload": dict(stats.payload),
        "skipped": sum(stats.skipped.values()),
        "anomalies": sum(stats.anomalies.values()),
        "implausible": sum(stats.implausible.values()),
    }
    print(json.dumps(result))
    return 0


def child_events(capture: str) -> int:
    """Iterate events(keep_messages=False), touching every message; print the totals."""
    import pcapflows

    flows = 0
    delivered = 0
    events = 0
    reader = pcapflows.events(capture, keep_messages=False)
    for event in reader:
        events += 1
        if event.message is not None:
            delivered += len(event.message.content)
        elif event.kind == "end" or event.kind == "error":
            flows += 1
    stats = reader.stats
    print(
        json.dumps(
            {"flows": flows, "events": events, "delivered": delivered, "packets": stats.packets}
        )
    )
    return 0


def child_dpkt(capture: str) -> int:
    """Decode every record with dpkt and touch the TCP payload; nothing else."""
    import dpkt

    packets = 0
    payload = 0
    with open(capture, "rb") as f:
        for _ts, buf in dpkt.pcap.Reader(f):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            tcp = ip.data
            payload += len(tcp.data)
            packets += 1
    print(json.dumps({"packets": packets, "payload": payload}))
    return 0


# ---------------------------------------------------------------------------------------
# Running and measuring


class Failure(Exception):
    """A tool failed or a result differs from the truth: the benchmark must not pass."""


def ensure_tcpflow() -> str | None:
    """Path of tcpflow, installing the Debian package if needed; None if impossible."""
    found = shutil.which("tcpflow")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print("tcpflow missing: apt-get install -y tcpflow", file=sys.stderr)
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "tcpflow"]):
        try:
            subprocess.run(sudo + cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"cannot install tcpflow ({e}): its column is skipped", file=sys.stderr)
            return None
    return shutil.which("tcpflow")


def run_measured(argv: list[str], stdout: int | None, scratch: Path) -> dict[str, Any]:
    """Run ``argv``; its wall seconds, peak RSS (MiB), exit status, stdout and stderr."""
    out_path = scratch / "stdout"
    err_path = scratch / "stderr"
    rss_path = scratch / "rss"
    gnu_time = os.access(GNU_TIME, os.X_OK)
    full = [GNU_TIME, "-f", "%M", "-o", str(rss_path), *argv] if gnu_time else argv
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            full, stdout=out if stdout is None else stdout, stderr=err, cwd=ROOT, env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if gnu_time:
        text = rss_path.read_text().split()
        rss_kib = int(text[-1]) if text and text[-1].isdigit() else 0
    else:
        rss_kib = usage.ru_maxrss
    return {
        "wall": wall,
        "rss": rss_kib / 1024,
        "rc": proc.returncode,
        "stdout": out_path.read_text(errors="replace"),
        "stderr": err_path.read_text(errors="replace")[-2000:],
    }


def load_truth(capture: Path) -> dict[str, Any]:
    with gzip.open(gencap.truth_path(capture), "rt") as f:
        truth: dict[str, Any] = json.load(f)
    return truth


def check_read(truth: dict[str, Any], summary: Path, result: dict[str, Any]) -> list[str]:
    """Differences between the read child's flows and the truth (empty: all equal)."""
    problems: list[str] = []
    want = {
        (c["client"][0], c["client"][1], c["server"][0], c["server"][1]): c
        for c in truth["connections"]
    }
    fields = (
        "client_bytes",
        "client_sha256",
        "server_bytes",
        "server_sha256",
        "messages",
        "shape",
        "close",
    )
    seen: set[tuple[Any, ...]] = set()
    with open(summary) as f:
        for line in f:
            got = json.loads(line)
            key = (*got["client"], *got["server"])
            if key in seen:
                problems.append(f"{key}: more than one flow")
            seen.add(key)
            t = want.get(key)
            if t is None:
                problems.append(f"{key}: a flow the generator never made: {got}")
                continue
            diff = {k: (t[k], got[k]) for k in fields if t[k] != got[k]}
            if got["gaps"] or got["conflicts"]:
                diff["gaps, conflicts"] = ((0, 0), (got["gaps"], got["conflicts"]))
            if got["touched"] != got["client_bytes"] + got["server_bytes"]:
                diff["touched"] = (got["client_bytes"] + got["server_bytes"], got["touched"])
            if diff:
                problems.append(f"{key}: (truth, pcapflows) {diff}")
    missing = set(want) - seen
    for key in sorted(missing, key=str)[:10]:
        problems.append(f"{key}: connection not returned: {want[key]}")
    if len(missing) > 10:
        problems.append(f"... {len(missing)} connections not returned in all")
    payload = result["payload"]
    totals = {
        "packets": (truth["packets"], result["packets"]),
        "flows": (len(want), result["flows"]),
        "payload delivered": (truth["payload_bytes"], payload.get("delivered", 0)),
        "payload duplicate": (truth["retransmitted_bytes"], payload.get("duplicate", 0)),
        "payload elsewhere": (
            0,
            sum(v for k, v in payload.items() if k not in ("captured", "delivered", "duplicate")),
        ),
        "skipped, anomalies, implausible": (
            0,
            result["skipped"] + result["anomalies"] + result["implausible"],
        ),
    }
    problems += [f"{k}: truth {a}, pcapflows {b}" for k, (a, b) in totals.items() if a != b]
    return problems


def capture_path(name: str, quick: bool, workdir: Path) -> tuple[Path, gencap.Params]:
    params = gencap.preset(name, quick)
    label = name + ("-quick" if quick else "")
    return workdir / f"{label}-{params.key()}.pcap", params


def ensure_capture(name: str, quick: bool, workdir: Path) -> Path:
    """The cached capture for a preset, generated (with its truth) when missing."""
    path, params = capture_path(name, quick, workdir)
    if path.exists() and gencap.truth_path(path).exists():
        return path
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("tmp-" + path.name)
    t0 = time.perf_counter()
    print(f"generating {name}{' (quick)' if quick else ''}: {params} ...", file=sys.stderr)
    gencap.generate(params, tmp)
    gencap.truth_path(tmp).replace(gencap.truth_path(path))
    tmp.replace(path)
    print(f"  {path.name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return path


# ---------------------------------------------------------------------------------------
# The run


def tool_argv(
    tool: str, capture: Path, scratch: Path, tcpflow: str
) -> tuple[list[str], int | None]:
    me = str(Path(__file__).resolve())
    py = sys.executable
    if tool == "read":
        return [py, me, "--child", "read", str(capture), str(scratch / "summary.jsonl")], None
    if tool == "cli":
        return [py, "-m", "pcapflows", str(capture)], subprocess.DEVNULL
    if tool == "tcpflow":
        return [tcpflow, "-r", str(capture), "-o", str(scratch / "tcpflow")], subprocess.DEVNULL
    if tool == "events":
        return [py, me, "--child", "events", str(capture)], None
    return [py, me, "--child", "dpkt", str(capture)], None


def capture_facts(name: str, capture: Path) -> dict[str, Any]:
    """What the table says of a capture, from its truth."""
    truth = load_truth(capture)
    return {
        "name": name,
        "packets": truth["packets"],
        "bytes": truth["bytes"],
        "connections": len(truth["connections"]),
        "concurrency": truth["params"]["concurrency"],
    }


def measure(
    facts: dict[str, Any],
    capture: Path,
    tool: str,
    tcpflow: str | None,
    scratch_root: Path,
) -> dict[str, Any]:
    """One run of one tool on one capture, checked (read() against the truth)."""
    with tempfile.TemporaryDirectory(prefix="bench-", dir=scratch_root) as d:
        scratch = Path(d)
        if tool == "tcpflow":
            (scratch / "tcpflow").mkdir()
        argv, stdout = tool_argv(tool, capture, scratch, tcpflow or "tcpflow")
        m = run_measured(argv, stdout, scratch)
        if m["rc"] != 0:
            raise Failure(
                f"{tool} on {capture.name} exited {m['rc']}: {shlex.join(argv)}\n{m['stderr']}"
            )
        if tool in ("read", "dpkt", "events"):
            m["result"] = json.loads(m["stdout"].strip().splitlines()[-1])
        if tool == "events":
            t = load_truth(capture)
            got = (m["result"]["flows"], m["result"]["delivered"], m["result"]["packets"])
            want = (len(t["connections"]), t["payload_bytes"], t["packets"])
            del t
            if got != want:
                raise Failure(
                    f"events() on {capture.name}: (flows, bytes, packets) {got}, truth {want}"
                )
        if tool == "read":
            m["wall"] -= m["result"]["check_seconds"]
            t = load_truth(capture)
            problems = check_read(t, scratch / "summary.jsonl", m["result"])
            del t
            if problems:
                raise Failure(
                    f"pcapflows.read differs from the truth of {capture.name} "
                    f"({len(problems)} problems):\n  " + "\n  ".join(problems[:30])
                )
        if tool == "dpkt" and m["result"]["packets"] != facts["packets"]:
            raise Failure(f"dpkt loop read {m['result']['packets']} packets")
        if tool == "tcpflow":
            m["files"] = sum(1 for p in (scratch / "tcpflow").iterdir())
    return m


def bench_all(
    captures: list[tuple[str, Path]],
    tools: list[str],
    rounds: int,
    tcpflow: str | None,
    scratch_root: Path,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Every round runs every tool on every capture, the tools' order rotating from
    round to round: what else the machine does then falls on all captures alike, so
    that ratios between captures (the doubling check) are as fair as ratios between
    tools. Returns per capture its facts and per tool the measured runs."""
    results = [
        {"facts": capture_facts(n, path), "runs": {t: [] for t in tools}} for n, path in captures
    ]
    for r in range(rounds):
        order = tools[r % len(tools) :] + tools[: r % len(tools)]
        for (name, capture), result in zip(captures, results, strict=True):
            for tool in order:
                if tool == "tcpflow" and tcpflow is None:
                    continue
                m = measure(result["facts"], capture, tool, tcpflow, scratch_root)
                result["runs"][tool].append(m)
                check = "  (checked: equal to the truth)" if tool == "read" else ""
                log(
                    f"  {name} round {r + 1}/{rounds} {tool:8s} {m['wall']:8.2f} s "
                    f"{m['rss']:8.1f} MiB{check}"
                )
    return results


def summarize(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per tool: median wall, µs/packet, peak RSS (the largest over the rounds)."""
    out: dict[str, dict[str, float]] = {}
    packets = result["facts"]["packets"]
    for tool, runs in result["runs"].items():
        if not runs:
            continue
        walls = [m["wall"] for m in runs]
        med = statistics.median(walls)
        out[tool] = {
            "wall": med,
            "min": min(walls),
            "max": max(walls),
            "us": med / packets * 1e6,
            "rss": max(m["rss"] for m in runs),
        }
    return out


LABELS = {
    "read": "pcapflows `read()`, every message",
    "cli": "`python -m pcapflows` listing",
    "tcpflow": "`tcpflow -r FILE -o DIR`",
    "dpkt": "bare dpkt decode loop",
    "events": "pcapflows `events(keep_messages=False)`",
}


def ratio(a: dict[str, float] | None, b: dict[str, float] | None, key: str) -> str:
    if not a or not b or not b[key]:
        return "n/a"
    return f"{a[key] / b[key]:.2f}x"


def table(results: list[dict[str, Any]]) -> str:
    """The results as Markdown (also readable as plain text)."""
    lines = [
        "| capture | tool | median wall s (min-max) | µs/packet | peak RSS MiB |",
        "|---|---|---|---|---|",
    ]
    ratios = [
        "| capture | read()/tcpflow time | read()/dpkt loop time | CLI/read() time "
        "| CLI/read() RSS | read()/tcpflow RSS |",
        "|---|---|---|---|---|---|",
    ]
    for res in results:
        f = res["facts"]
        cap = (
            f"{f['name']}: {f['packets']:,} packets, {f['bytes'] / 1e6:,.0f} MB, "
            f"{f['connections']:,} connections, {f['concurrency']:,} open at once"
        )
        s = summarize(res)
        for tool, v in s.items():
            lines.append(
                f"| {cap} | {LABELS[tool]} | {v['wall']:.2f} ({v['min']:.2f}-{v['max']:.2f}) "
                f"| {v['us']:.1f} | {v['rss']:.0f} |"
            )
            cap = f"{f['name']}"
        r, c, t, d = (s.get(k) for k in ("read", "cli", "tcpflow", "dpkt"))
        ratios.append(
            f"| {f['name']} | {ratio(r, t, 'wall')} | {ratio(r, d, 'wall')} "
            f"| {ratio(c, r, 'wall')} | {ratio(c, r, 'rss')} | {ratio(r, t, 'rss')} |"
        )
    text = "\n".join(lines) + "\n\n" + "\n".join(ratios) + "\n"
    by_name = {res["facts"]["name"]: summarize(res) for res in results}
    doubling = [
        "| capture doubled at equal concurrency | tool | time x2/x1 | peak RSS x2/x1 |",
        "|---|---|---|---|",
    ]
    for name, s in by_name.items():
        twice = by_name.get(name + "-x2")
        if twice is None:
            continue
        for tool in s:
            if tool in twice:
                doubling.append(
                    f"| {name} | {tool} | {ratio(twice[tool], s[tool], 'wall')} "
                    f"| {ratio(twice[tool], s[tool], 'rss')} |"
                )
    if len(doubling) > 2:
        text += "\n" + "\n".join(doubling) + "\n"
    return text


def machine() -> dict[str, str]:
    """Facts about the machine and the code the figures belong to."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass

    def out(cmd: list[str]) -> str:
        try:
            return subprocess.run(
                cmd, cwd=ROOT, capture_output=True, text=True, check=False
            ).stdout.strip()
        except OSError:
            return ""

    commit = out(["git", "rev-parse", "HEAD"]) or "unknown"
    if out(["git", "status", "--porcelain", "--untracked-files=no"]):
        commit += " (with uncommitted changes)"
    code = out(["git", "log", "-1", "--format=%H", "--", "pcapflows"]) or "unknown"
    version = out([sys.executable, "-c", "import pcapflows; print(pcapflows.__version__)"])
    tcpflow = out(["tcpflow", "-V"]) if shutil.which("tcpflow") else "not installed"
    dpkt_version = out([sys.executable, "-c", "import dpkt; print(dpkt.__version__)"])
    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "system": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "pcapflows": version,
        "git commit": commit,
        "last commit changing pcapflows/": code,
        "tcpflow": tcpflow,
        "dpkt": dpkt_version,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "peak RSS from": "GNU time %M" if os.access(GNU_TIME, os.X_OK) else "os.wait4 ru_maxrss",
    }


def markdown(results: list[dict[str, Any]], argv: list[str], rounds: int) -> str:
    facts = machine()
    head = [f"Command: `{shlex.join(argv)}` ({rounds} rounds, tools alternating)", ""]
    head += [f"- {k}: {v}" for k, v in facts.items()]
    return "\n".join(head) + "\n\n" + table(results)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument(
        "--preset",
        default="small,large",
        help="comma-separated: small, large, wide, each optionally -x2 (doubled at equal "
        "concurrency)",
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="captures a tenth the size")
    ap.add_argument(
        "--tools",
        default=",".join(TOOLS),
        help="comma-separated subset of " + ", ".join(TOOLS + EXTRA_TOOLS),
    )
    ap.add_argument(
        "--workdir",
        type=Path,
        default=HERE / ".cache",
        help="where captures are cached (default bench/.cache)",
    )
    ap.add_argument(
        "--scratch",
        type=Path,
        default=None,
        help="where tools write their output (tcpflow's files): default /dev/shm when it "
        "exists, so that tcpflow is not timed on the disk",
    )
    ap.add_argument("--markdown", type=Path, help="also write the results there (Markdown)")
    args = ap.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        children = {"read": child_read, "events": child_events, "dpkt": child_dpkt}
        return children[kind](*rest)

    tools = [t for t in args.tools.split(",") if t]
    unknown = set(tools) - set(TOOLS) - set(EXTRA_TOOLS)
    if unknown:
        ap.error(f"unknown tools: {', '.join(sorted(unknown))}")
    names = [n for n in args.preset.split(",") if n]
    for n in names:
        try:
            gencap.preset(n)
        except ValueError as e:
            ap.error(str(e))
    tcpflow = ensure_tcpflow() if "tcpflow" in tools else None
    if "tcpflow" in tools and tcpflow is None:
        print("NOTE: tcpflow could not be installed; its column is empty", file=sys.stderr)
    workdir = args.workdir.resolve()
    scratch = args.scratch
    if scratch is None:
        shm = Path("/dev/shm")
        scratch = shm if shm.is_dir() and os.access(shm, os.W_OK) else workdir
    scratch.mkdir(parents=True, exist_ok=True)
    captures = [(n, ensure_capture(n, args.quick, workdir)) for n in names]

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        results = bench_all(captures, tools, args.rounds, tcpflow, scratch, log)
    except Failure as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    text = table(results)
    print(text)
    if args.markdown:
        command = ["python", "bench/bench_core.py", *(sys.argv[1:] if argv is None else argv)]
        args.markdown.write_text(markdown(results, command, args.rounds))
        print(f"written to {args.markdown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
