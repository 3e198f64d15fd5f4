"""A Python worker process of redesmyn's worker pool (`python: { workers: N }`).

The host (crates/redesmyn-python/src/workers) starts this module with three
inherited file descriptors: a control socket and two shared-memory files
(memfd), one for the batches it sends and one for the predictions it reads
back. Batches and predictions are Arrow IPC streams written by polars; only a
short JSON line per batch crosses the socket:

    host   -> worker  {"size": 1234, "params": {...}, "model": {"id": 7, "path": "...", "params": {...}}}
    worker -> host    {"ok": true, "size": 456, "kind": "column", "rss": 123456789}
                      {"ok": false, "error": "ValueError: ...", "detail": "<traceback>"}

At start the worker answers {"ready": true, "pid": ...} once the handler (and
loader) imported, or {"ready": false, "code": "import", "error": ...} and exits.

It never outlives the host: it asks the kernel for SIGKILL when its parent
dies (PR_SET_PDEATHSIG) and exits when the control socket reaches EOF.
Uses only polars and the standard library.
"""

import argparse
import collections
import contextlib
import ctypes
import importlib
import inspect
import io
import json
import mmap
import os
import signal
import socket
import sys
import traceback

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """SIGKILL when the parent dies; exit now if it already did."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(0)


def describe(error: BaseException) -> str:
    """`"ValueError: message"`, as the in-process bridge reports an exception."""
    text = str(error)
    name = type(error).__name__
    return f"{name}: {text}" if text else name


def resolve(target: str):
    """Imports `module:attribute`; raises a (code, message) tuple on failure."""
    module_name, attribute = target.split(":", 1)
    try:
        value = importlib.import_module(module_name)
    except BaseException as e:  # noqa: BLE001 - any import failure is reported
        raise LookupError("import", describe(e)) from e
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError as e:
            raise LookupError("attribute", describe(e)) from e
    if not callable(value):
        raise LookupError("callable", f"{target} is not callable")
    return value


def takes_params(function) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    if "params" in parameters:
        return True
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


class Channel:
    """The control socket: one JSON object per line each way."""

    def __init__(self, fd: int):
        self.sock = socket.socket(fileno=fd)
        self.reader = self.sock.makefile("rb")

    def send(self, message: dict) -> None:
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def receive(self):
        line = self.reader.readline()
        return json.loads(line) if line else None


class Region:
    """A shared-memory file, mapped again when the host has grown it."""

    def __init__(self, fd: int):
        self.fd = fd
        self.map = None

    def read(self, size: int) -> io.BytesIO:
        """The first `size` bytes, as the file-like object polars reads a stream from (one copy)."""
        if self.map is None or len(self.map) < size:
            self.map = mmap.mmap(self.fd, os.fstat(self.fd).st_size, prot=mmap.PROT_READ)
        with memoryview(self.map) as view:
            return io.BytesIO(view[:size])


def rss_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Models:
    """The models this worker loaded, by the host's model id (LRU, `capacity` of them)."""

    def __init__(self, loader, capacity: int):
        self.loader = loader
        self.loader_params = loader is not None and takes_params(loader)
        self.capacity = max(1, capacity)
        self.models = collections.OrderedDict()

    def get(self, spec: dict):
        key = spec["id"]
        if key in self.models:
            self.models.move_to_end(key)
            return self.models[key]
        if self.loader is None:
            raise RuntimeError("the endpoint has a model cache but no Python loader")
        kwargs = {"params": spec.get("params", {})} if self.loader_params else {}
        model = self.loader(spec["path"], **kwargs)
        self.models[key] = model
        while len(self.models) > self.capacity:
            self.models.popitem(last=False)
        return model


def as_frame(pl, value):
    """What the handler returned as (kind, DataFrame), as the bridge reads it."""
    if isinstance(value, pl.DataFrame):
        return "columns", value
    if isinstance(value, pl.Series):
        return "column", value.to_frame()
    try:
        series = pl.Series("predictions", value)
    except Exception as e:  # noqa: BLE001 - reported as the bridge does
        kind = type(value).__name__
        raise TypeError(
            f"the Python handler returned a {kind}, which polars cannot turn into a column: {describe(e)}"
        ) from e
    return "column", series.to_frame()


@contextlib.contextmanager
def trace_context(traceparent):
    """The batch span as the current OpenTelemetry context of the handler
    call, when the host sent one and opentelemetry-api is installed."""
    token = None
    if traceparent:
        try:
            from opentelemetry import context
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

            token = context.attach(TraceContextTextMapPropagator().extract({"traceparent": traceparent}))
        except ImportError:
            token = None
    try:
        yield
    finally:
        if token is not None:
            context.detach(token)


def serve(channel: Channel, batches: Region, out_fd: int, handler, models: Models) -> None:
    import polars as pl

    handler_params = takes_params(handler)
    while True:
        message = channel.receive()
        if message is None:
            return
        try:
            frame = pl.read_ipc_stream(batches.read(message["size"]))
            kwargs = {"params": message.get("params", {})} if handler_params else {}
            with trace_context(message.get("traceparent")):
                if message.get("model") is not None:
                    result = handler(models.get(message["model"]), frame, **kwargs)
                else:
                    result = handler(frame, **kwargs)
            kind, out = as_frame(pl, result)
            buffer = io.BytesIO()
            out.write_ipc_stream(buffer)
            data = buffer.getbuffer()
            os.pwrite(out_fd, data, 0)
            reply = {"ok": True, "size": len(data), "kind": kind}
            del data
        except Exception as e:  # noqa: BLE001 - every failure answers the batch
            reply = {"ok": False, "error": describe(e), "detail": traceback.format_exc()}
        reply["rss"] = rss_bytes()
        channel.send(reply)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--control", type=int, required=True)
    parser.add_argument("--batches", type=int, required=True)
    parser.add_argument("--predictions", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--handler", required=True)
    parser.add_argument("--loader")
    parser.add_argument("--models", type=int, default=1)
    args = parser.parse_args()
    die_with_parent(args.parent)
    # Ctrl-C reaches the whole process group: the host decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = Channel(args.control)
    target = args.handler
    try:
        import polars  # noqa: F401 - the worker needs it; say so at start

        handler = resolve(target)
        loader = None
        if args.loader:
            target = args.loader
            loader = resolve(target)
    except LookupError as e:
        code, message = e.args
        channel.send({"ready": False, "code": code, "target": target, "error": message})
        sys.exit(1)
    except BaseException as e:  # noqa: BLE001 - reported to the host
        channel.send({"ready": False, "code": "import", "target": target, "error": describe(e)})
        sys.exit(1)
    channel.send({"ready": True, "pid": os.getpid()})
    serve(channel, Region(args.batches), args.predictions, handler, Models(loader, args.models))


if __name__ == "__main__":
    main()
