"""A text model that streams: each prompt's words, one per step.

Served by examples/streaming/server.ts as `/generate/py`. The delay between
words is $WORD_DELAY_MS milliseconds (default 500).
"""

import os
import time

import polars as pl


def generate(df: pl.DataFrame):
    """Yields one word per row per step; a row ends after its last word.

    Each step is {"chunks": [one value per row, None where a row has
    nothing], "done": [rows that end now]}. Several clients' prompts share
    one call when they arrive together (batching), each getting its own words.
    Words after the first keep their leading space, as text generators send
    tokens, so a row's chunks joined give back its text.
    """
    delay = float(os.environ.get("WORD_DELAY_MS", "500")) / 1000
    rows = [prompt.split() for prompt in df["prompt"].to_list()]
    try:
        for step in range(max((len(words) for words in rows), default=0)):
            time.sleep(delay)
            yield {
                "chunks": [(" " if step else "") + words[step] if step < len(words) else None for words in rows],
                "done": [i for i, words in enumerate(rows) if len(words) == step + 1],
            }
    finally:
        # Runs when every row is done, and when every client left early.
        pass
