"""Reads a Server-Sent Events answer with httpx-sse, as MLServer's tests do.

usage: sse_stream.py URL BODY_JSON
Prints {"status", "content_type", "events": [{"data": <json>, "t": <seconds>}]}
with `t` the monotonic arrival time of each event.
"""

import json
import sys
import time

import httpx
from httpx_sse import connect_sse


def main() -> None:
    url, body = sys.argv[1], sys.argv[2]
    events = []
    with httpx.Client(timeout=60) as client:
        with connect_sse(client, "POST", url, content=body, headers={"content-type": "application/json"}) as source:
            status = source.response.status_code
            content_type = source.response.headers.get("content-type")
            for event in source.iter_sse():
                events.append({"data": json.loads(event.data), "t": time.monotonic()})
    print(json.dumps({"status": status, "content_type": content_type, "events": events}))


if __name__ == "__main__":
    main()
