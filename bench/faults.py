"""The fault suite, run long: the code of tests/faults with bigger numbers, printing what it
measured and found instead of asserting.

    python -m bench.faults [--kills 30] [--writers 8] [--examples 200] [--clients 8]
                           [--calls 500] [--phases 3] [--session-calls 10]
                           [--only kill9,fuzz,soak]

1. kill9: ``--kills`` rounds of the gateway (a real process, one SQLite file) under
   ``--writers`` clients creating chats and completions and rewriting completion texts, each
   killed with SIGKILL after a random number of acknowledged writes (50-400) plus up to 0.2 s;
   then the audit: PRAGMA integrity_check and foreign_key_check, every acknowledged write
   present and as written, no write applied twice.
2. fuzz: every tool of ``apex-mcp serve --http`` (a real process), ``--examples`` inputs drawn
   from its inputSchema (hypothesis-jsonschema) and half as many outside it, then malformed
   JSON-RPC; findings are answers that are neither a result fitting the outputSchema nor a
   clean tool error, or that show a traceback or a secret; and tracebacks in the server's log.
3. soak: ``--clients`` concurrent clients over streamable HTTP, each making ``--calls``
   calls per phase in sessions of ``--session-calls`` calls (each session subscribes to a
   research report and ends without unsubscribing, as hosts do), for ``--phases`` phases
   after a warm-up; the server's VmRSS after each phase. Memory that keeps growing phase
   after phase is a leak; growth that stops is caches and allocator pools filling.

Nothing leaves the machine: the miner, SearXNG and the web pages are fakes on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import anyio

from tests.faults.fuzz import fuzz_every_tool, send_raw_requests
from tests.faults.kill9 import Ledger, audit, kill9_rounds
from tests.faults.processes import fake_world, mcp_http_process, rss_kib, tracebacks
from tests.faults.soak import soak


async def bench_kill9(tmp: Path, kills: int, writers: int, seed: int) -> None:
    db, ledger = tmp / "kill9.db", Ledger()
    started = time.monotonic()
    await kill9_rounds(
        db,
        ledger,
        rounds=kills,
        writers=writers,
        acks_before_kill=(50, 400),
        rng=random.Random(seed),
    )
    found = audit(db, ledger)
    print(f"\nkill9: {kills} kill -9s, {writers} writers, {time.monotonic() - started:.1f} s")
    print(f"  writes sent {ledger.sent}, acknowledged {ledger.acknowledged}")
    print(f"  stored: {found.chats_stored} chats, {found.completions_stored} completions")
    print(f"  integrity_check: {found.integrity}; foreign key violations: ", end="")
    print(found.foreign_key_violations)
    for name, items in (
        ("acknowledged writes missing", found.missing),
        ("acknowledged writes altered", found.altered),
        ("writes applied twice", found.duplicated),
        ("errors while the gateway was up", ledger.errors_while_up),
    ):
        print(f"  {name}: {len(items)}", *[f"\n    {item}" for item in items[:10]])


async def bench_fuzz(tmp: Path, examples: int, derandomize: bool) -> None:
    log = tmp / "fuzz.log"
    started = time.monotonic()
    with fake_world(tmp / "fuzz.db") as world, mcp_http_process(world.env, log) as (url, _):
        report = await anyio.to_thread.run_sync(
            lambda: fuzz_every_tool(
                url, in_schema=examples, out_of_schema=examples // 2, derandomize=derandomize
            )
        )
        raw, _ = await send_raw_requests(url)
    calls = sum(report.calls.values())
    print(f"\nfuzz: {len(report.calls)} tools, {calls} calls, {time.monotonic() - started:.1f} s")
    for kind, n in report.kind_calls.items():
        print(f"  {kind}: {n} calls, {report.kind_errors[kind]} tool errors")
    slowest = sorted(report.seconds.items(), key=lambda item: -item[1])[:3]
    print("  slowest tools (s in all):", ", ".join(f"{t} {s:.1f}" for t, s in slowest))
    findings = report.summary()
    print(f"  findings: {len(findings)}", *[f"\n    {f[:600]}" for f in findings])
    print(f"  malformed JSON-RPC findings: {len(raw)}", *[f"\n    {f}" for f in raw])
    printed = tracebacks(log)
    print(f"  tracebacks in the server's log: {len(printed)}", *[f"\n{t}" for t in printed[:3]])


async def bench_soak(tmp: Path, clients: int, calls: int, phases: int, session_calls: int) -> None:
    log = tmp / "soak.log"
    with fake_world(tmp / "soak.db") as world, mcp_http_process(world.env, log) as (url, pid):
        start = rss_kib(pid)
        print(
            f"\nsoak: {clients} clients, {calls} calls each per phase, sessions of "
            f"{session_calls} calls (each subscribes to a research report)"
        )
        print(f"  server RSS at start {start / 1024:.1f} MiB")
        for phase in range(phases):
            report = await soak(
                url,
                pid,
                clients=clients,
                calls_per_client=calls,
                calls_per_session=session_calls,
                warmup_calls=10 if phase == 0 else 0,
            )
            print(f"  phase {phase + 1}: " + "\n    ".join(report.lines()))
    printed = tracebacks(log)
    print(f"  tracebacks in the server's log: {len(printed)}", *[f"\n{t}" for t in printed[:3]])


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.faults")
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--examples", type=int, default=200, help="in-schema inputs per tool")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--calls", type=int, default=500, help="per client and phase")
    parser.add_argument("--phases", type=int, default=3)
    parser.add_argument("--session-calls", type=int, default=10, help="calls per MCP session")
    parser.add_argument("--seed", type=int, default=None, help="kill9's seed (else random)")
    parser.add_argument("--only", default="kill9,fuzz,soak")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    print(f"command: python -m bench.faults {' '.join(sys.argv[1:])}".rstrip())
    print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}, {platform.system()}, "
        f"Python {platform.python_version()}; kill9 seed {seed}"
    )
    parts = set(args.only.split(","))
    with tempfile.TemporaryDirectory(prefix="apex-faults-") as tmp:
        if "kill9" in parts:
            await bench_kill9(Path(tmp), args.kills, args.writers, seed)
        if "fuzz" in parts:
            await bench_fuzz(Path(tmp), args.examples, derandomize=False)
        if "soak" in parts:
            await bench_soak(Path(tmp), args.clients, args.calls, args.phases, args.session_calls)


if __name__ == "__main__":
    anyio.run(main)
