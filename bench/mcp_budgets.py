"""The MCP server's budgets: what tools/list costs a model, how small web_search answers are,
and how fast a host can spawn the server.

    python -m bench.mcp_budgets [--runs 10]

1. tools/list: cl100k_base tokens of the tool definitions as sent (compact JSON), on the
   embedded engine (which serves the most tools). Budget: under 4,000.
2. web_search: a default answer for 5 results against the raw WebRetrieval JSON of the same
   results, served by a local wire server. Budget: at least 3 times smaller.
3. Cold start over stdio, spawn to tools/list answered: apex-mcp against a bare MCPServer with
   one tool, alternating, same machine, same run. Budget: within 15%.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from tests.jsonrpc import INITIALIZE, INITIALIZED, TOOLS_LIST

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "tests" / "data" / "apex_docs_samples.json"

BARE_SERVER = """
from mcp.server import MCPServer
mcp = MCPServer("bare", log_level="WARNING")
@mcp.tool()
def echo(text: str) -> str:
    return text
mcp.run()
"""


def tokens(text: str) -> int:
    import bpe_openai

    return len(bpe_openai.get_encoding("cl100k_base").encode(text))


async def tools_list_tokens(settings: Any) -> tuple[int, int]:
    from mcp import Client

    from apex_mcp.server.app import build_server

    async with Client(build_server(settings), mode="legacy") as client:
        tools = (await client.list_tools()).tools
    wire = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]
    return len(tools), tokens(json.dumps(wire, separators=(",", ":"), ensure_ascii=False))


async def web_search_sizes(settings_for: Any) -> tuple[int, int, int, int]:
    """(raw bytes, answer bytes, raw tokens, answer tokens) for 5 results of the docs' pages."""
    from mcp import Client

    from apex_mcp.apex import models as m
    from apex_mcp.apex.server import create_app, serve_client
    from apex_mcp.server.app import build_server
    from tests.doubles import ScriptedApex
    from tests.servers import serve_asgi

    sample = json.loads(SAMPLES.read_text())["WebRetrieval"]["response"]["results"]
    results = [
        m.WebSearchResult(
            url=f"{page['url']}?page={i}", content=page["content"], relevant=page["relevant"]
        )
        for i, page in enumerate(sample * 3)
    ][:5]
    response = m.WebRetrievalResponse(results=results)
    raw = json.dumps(response.to_wire(), separators=(",", ":"), ensure_ascii=False)
    double = ScriptedApex(web_retrieval=response)
    with serve_asgi(create_app(serve_client(double))) as url:
        async with Client(build_server(settings_for(url)), mode="legacy") as client:
            result = await client.call_tool(
                "web_search", {"search_query": "What is Bittensor?", "n_results": 5}
            )
    answer = json.dumps(
        result.model_dump(mode="json", by_alias=True, exclude_none=True),
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return len(raw.encode()), len(answer.encode()), tokens(raw), tokens(answer)


def spawn_to_tools_list(command: list[str], env: dict[str, str]) -> float:
    """Seconds from spawning a stdio server to its tools/list answer."""
    messages = [INITIALIZE, INITIALIZED, TOOLS_LIST]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("".join(json.dumps(msg) + "\n" for msg in messages).encode())
    process.stdin.flush()
    for line in process.stdout:
        if json.loads(line).get("id") == 2:
            break
    elapsed = time.perf_counter() - started
    process.stdin.close()
    process.wait(timeout=30)
    return elapsed


def cold_start(runs: int, env: dict[str, str]) -> tuple[float, float, list[float]]:
    """Medians of both servers and, for the spread, each back-to-back pair's ratio."""
    bare = [sys.executable, "-c", BARE_SERVER]
    ours = [sys.executable, "-m", "apex_mcp"]
    for command in (bare, ours):  # warm the file cache once for both
        spawn_to_tools_list(command, env)
    times: dict[str, list[float]] = {"bare": [], "ours": []}
    for _ in range(runs):
        times["bare"].append(spawn_to_tools_list(bare, env))
        times["ours"].append(spawn_to_tools_list(ours, env))
    ratios = [ours / bare for bare, ours in zip(times["bare"], times["ours"], strict=True)]
    return statistics.median(times["bare"]), statistics.median(times["ours"]), ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="spawns of each server")
    args = parser.parse_args()

    from apex_mcp.config import Settings

    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "HOME": tmp,
            "APEX_DB": f"{tmp}/apex.db",
            "APEX_DISCOVER_LOCAL_MINERS": "false",
            "APEX_BACKEND": "local",
        }
        local = Settings(db=Path(tmp) / "bench.db", discover_local_miners=False, backend="local")
        n_tools, list_tokens = anyio.run(tools_list_tokens, local)

        def remote(url: str) -> Settings:
            return Settings(backend="remote", base_url=url)

        raw_bytes, answer_bytes, raw_tokens, answer_tokens = anyio.run(web_search_sizes, remote)
        bare, ours, ratios = cold_start(args.runs, env)

    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print("command: python -m bench.mcp_budgets")
    print(f"tools/list: {n_tools} tools, {list_tokens} cl100k tokens (budget < 4000)")
    print(
        f"web_search, 5 results: raw WebRetrieval {raw_bytes} B / {raw_tokens} tokens, "
        f"tool answer {answer_bytes} B / {answer_tokens} tokens: "
        f"{raw_bytes / answer_bytes:.1f}x smaller in bytes, {raw_tokens / answer_tokens:.1f}x "
        "in tokens (budget >= 3x)"
    )
    print(
        f"cold start, spawn to tools/list (median of {args.runs}): bare MCPServer "
        f"{bare * 1000:.0f} ms, apex-mcp {ours * 1000:.0f} ms: {100 * (ours / bare - 1):+.1f}% "
        "(budget within 15%)"
    )
    # The machine is shared: a pair run back to back shares its noise, so the spread of the
    # pairs' ratios says how far to trust the medians.
    quartiles = statistics.quantiles(ratios, n=4)
    print(
        f"  pairwise apex-mcp/bare: median {100 * (statistics.median(ratios) - 1):+.1f}%, "
        f"middle half {100 * (quartiles[0] - 1):+.1f}% to {100 * (quartiles[2] - 1):+.1f}%, "
        f"all {100 * (min(ratios) - 1):+.1f}% to {100 * (max(ratios) - 1):+.1f}%"
    )


if __name__ == "__main__":
    main()
