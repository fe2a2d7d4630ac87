"""One of the processes of the two-process store test (run by test_store.py, not by pytest).

    python store_writer.py DB USER_ID COUNT

Opens DB (creating it if needed) and prints "ready"; then reads a job id from stdin and,
COUNT times, creates a chat for USER_ID and appends the chunk "USER_ID:i" to that job;
prints "done" at the end.
"""

from __future__ import annotations

import sys

import anyio
import anyio.to_thread

from apex_mcp.engine.store import open_store


async def main(path: str, user_id: str, count: int) -> None:
    async with await open_store(path) as store:
        print("ready", flush=True)
        job_id = (await anyio.to_thread.run_sync(sys.stdin.readline)).strip()
        for i in range(count):
            await store.create_chat(
                user_id, user_prompt=f"prompt {i}", chat_type="apex", completion_type="basic"
            )
            await store.append_chunk(job_id, f"{user_id}:{i}")
    print("done", flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
