# requires: mcp==2.3.0
"""Drives `airlock mcp` with the official Python MCP SDK (interop check).

Usage: python mcp_client.py AIRLOCK_BINARY TOOLKIT [CONFIG [AUDIT]]

Starts the server over stdio, lists its tools (names, titles, annotations),
calls `word_count__count` and a call that fails, starts the spinning tool
with a progress callback and cancels it (the SDK sends
notifications/cancelled), and prints one JSON object on stdout with what it
saw.
The first line names the PyPI requirement; `cargo xtask mcp-venv` and the
test in mcp.rs install exactly that into target/mcp-venv.
"""

import asyncio
import json
import sys
import time

import anyio

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def texts(result):
    return [c.text for c in result.content if getattr(c, "type", None) == "text"]


async def cancel_spin(session, tools):
    """Calls the 2 s spin with a progress callback and gives up after 1.2 s:
    the SDK cancels the request. Returns when it did and the progress seen."""
    spin = next(n for n, t in tools.items() if t.description == "Loops until its 2 s deadline.")
    progress = []

    async def on_progress(value, total, message):
        progress.append({"progress": value, "message": message})

    with anyio.move_on_after(1.2) as scope:
        await session.call_tool(spin, {}, progress_callback=on_progress)
    return {"cancelled": scope.cancelled_caught, "at": time.time(), "progress": progress}


async def main(binary, toolkit, config, audit=None):
    args = ["mcp", toolkit]
    if config:
        args += ["--config", config]
    if audit:
        args += ["--audit", audit]
    server = StdioServerParameters(command=binary, args=args)
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            listed = await session.list_tools()
            tools = {t.name: t for t in listed.tools}
            ok = await session.call_tool("word_count__count", {"text": "one two three\nfour"})
            bad = await session.call_tool("word_count__count", {"text": 7})
            report = {
                "server": init.server_info.name,
                "protocol": str(init.protocol_version),
                "tools": sorted(tools),
                "titles": {name: t.title for name, t in tools.items()},
                "annotations": {
                    name: t.annotations.model_dump(exclude_none=True, by_alias=True) if t.annotations else None
                    for name, t in tools.items()
                },
                "count_description": tools["word_count__count"].description,
                "count_input_schema": tools["word_count__count"].input_schema,
                "ok": {
                    "is_error": bool(ok.is_error),
                    "structured": ok.structured_content,
                    "text": texts(ok),
                },
                "bad": {"is_error": bool(bad.is_error), "text": texts(bad)},
                "cancel": await cancel_spin(session, tools),
            }
            print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
