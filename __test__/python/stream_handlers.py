"""Streaming handlers for __test__/stream-python.test.ts.

Each records what it saw in a file named by $REDESMYN_STREAM_LOG, one line
per fact, so the test (in the Node process) can read what Python did.
"""

import asyncio
import os
import time

import polars as pl


def _log(line: str) -> None:
    path = os.environ.get("REDESMYN_STREAM_LOG")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def words(df: pl.DataFrame):
    """One word per step per row, each row ending after its last word."""
    _log(f"batch {df.height}")
    rows = [p.split() for p in df["prompt"].to_list()]
    longest = max((len(r) for r in rows), default=0)
    try:
        for step in range(longest):
            time.sleep(0.06)
            yield {
                "chunks": [r[step] if step < len(r) else None for r in rows],
                "done": [i for i, r in enumerate(rows) if len(r) == step + 1],
            }
    finally:
        _log("words closed")


async def words_async(df: pl.DataFrame):
    """The same, as an async generator."""
    rows = [p.split() for p in df["prompt"].to_list()]
    for step in range(max((len(r) for r in rows), default=0)):
        await asyncio.sleep(0.03)
        yield [r[step] if step < len(r) else None for r in rows]


def endless(df: pl.DataFrame):
    """Ticks until closed; logs its cleanup."""
    try:
        i = 0
        while True:
            time.sleep(0.02)
            yield pl.Series([f"tick {i}"] * df.height)
            i += 1
    finally:
        _log("endless closed")


async def endless_async(df: pl.DataFrame):
    try:
        while True:
            await asyncio.sleep(0.02)
            yield ["tick"] * df.height
    finally:
        _log("endless_async closed")


def failing(df: pl.DataFrame):
    yield ["one"] * df.height
    yield ["two"] * df.height
    raise ValueError("the model broke")
