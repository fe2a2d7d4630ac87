"""Drives an Apex server with the official Macrocosmos Python SDK (2.1.0, gRPC), as its users
did the hosted service, and prints what it saw as one JSON object.

    python -m tests.sdk.macrocosmos_client HOST:PORT API_KEY

A process of its own: the SDK's generated protobuf module and apex-mcp's register the same
apex.v1 names in protobuf's process-wide descriptor pool, which refuses the second.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import macrocosmos as mc  # type: ignore[import-untyped]


async def drive(address: str, api_key: str) -> dict[str, Any]:
    def client(key: str = api_key) -> Any:
        return mc.AsyncApexClient(api_key=key, base_url=address, secure=False, app_name="tests")

    seen: dict[str, Any] = {}
    apex = client()
    question = [{"role": "user", "content": "What do bees do?"}]

    answer = await apex.chat.completions.create(messages=question)
    seen["chat"] = answer.choices[0].message.content

    chunks = await apex.chat.completions.create(messages=question, stream=True)
    seen["stream"] = [c.choices[0].delta.content async for c in chunks if c.choices]

    results = await apex.web_search.search(search_query="bees", max_results_per_miner=2)
    seen["search"] = [r.url for r in results.results]

    job = await apex.deep_research.create_job(messages=question)
    deadline = time.monotonic() + 120
    status = await apex.deep_research.get_job_results(job_id=job.job_id)
    while status.status not in ("completed", "failed") and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        status = await apex.deep_research.get_job_results(job_id=job.job_id)
    last = status.result[-1].chunk if status.result else "[]"
    seen["research"] = {  # a chunk is a JSON list of deltas; the last is the report
        "status": status.status,
        "report": "".join(delta.get("content", "") for delta in json.loads(last)),
    }

    try:
        await client("not-a-key").chat.completions.create(messages=question)
        seen["bad_key"] = "accepted"
    except Exception as error:  # the SDK wraps grpc's error in MacrocosmosError
        seen["bad_key"] = str(error)
    return seen


if __name__ == "__main__":
    print(json.dumps(asyncio.run(drive(sys.argv[1], sys.argv[2]))))
