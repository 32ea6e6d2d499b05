"""A steady HTTP load for the router: threads, each with one keep-alive connection.

Standard library only, so the same file runs on this machine or, copied there, on the
box (`python3 load.py URL BODY_FILE --out FILE ...`) next to the router, where latency
is not the SSH tunnel's. Bounded in time and in count; it stops by itself.

Every request is recorded: start and end (seconds since the load began), status, the
X-Model-Slot and X-Model-Version headers, and the error if it failed. A failed request
is one that did not get a 200.

Like urllib3's pool, a kept connection the server has closed meanwhile is not reused.
One case is re-sent once on a new connection, and counted apart (`resent`), not hidden:
a request on a reused keep-alive connection that the server reset before sending a
single byte of response. nginx before 1.27.4 (keepalive_min_timeout) closes its idle
keep-alive connections when it reloads, and a request that crosses that close on the
wire gets a reset: nginx never read it, so sending it again is safe (RFC 9112 9.3.1
allows it for idempotent requests; a prediction changes nothing).
"""

from __future__ import annotations

import argparse
import http.client
import json
import select
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Result:
    start: float
    end: float
    status: int
    slot: str
    version: str
    error: str = ""
    resent: bool = False


@dataclass
class Load:
    url: str
    body: bytes
    threads: int = 4
    duration_s: float = 30.0
    max_requests: int = 100_000
    headers: dict[str, str] = field(default_factory=dict)
    stop_file: Path | None = None
    results: list[Result] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> list[Result]:
        self.t0 = time.monotonic()
        self.t0_wall = time.time()  # to place the results beside the box's own timestamps
        workers = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(self.duration_s + 60)
        return self.results

    def stop(self) -> None:
        self._stop.set()

    def _done(self) -> bool:
        elapsed = time.monotonic() - self.t0
        stopped = self.stop_file is not None and self.stop_file.exists()
        return self._stop.is_set() or stopped or elapsed > self.duration_s

    def _worker(self) -> None:
        target = urllib.parse.urlsplit(self.url)
        conn: http.client.HTTPConnection | None = None
        while not self._done():
            with self._lock:
                if len(self.results) >= self.max_requests:
                    break
            if conn is not None and _closed_by_server(conn):
                conn.close()
                conn = None
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            start = time.monotonic() - self.t0
            result, keep = self._send(conn, target.path, start)
            if not result.status and reused and result.error.startswith(_RESET):
                conn.close()  # reset before any response on a kept connection: once more
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                result, keep = self._send(conn, target.path, start)
                result.resent = True
            if not keep:
                conn.close()
                conn = None
            with self._lock:
                self.results.append(result)
        if conn is not None:
            conn.close()

    def _send(
        self, conn: http.client.HTTPConnection, path: str, start: float
    ) -> tuple[Result, bool]:
        """One request: its result, and whether the connection can be kept."""
        headers = {"Content-Type": "application/json", **self.headers}
        try:
            conn.request("POST", path, body=self.body, headers=headers)
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            return Result(start, time.monotonic() - self.t0, 0, "", "", repr(exc)), False
        result = Result(
            start,
            time.monotonic() - self.t0,
            response.status,
            response.getheader("X-Model-Slot", ""),
            response.getheader("X-Model-Version", ""),
            "" if response.status == 200 else f"HTTP {response.status}",
        )
        return result, response.getheader("Connection", "").lower() != "close"


# What a reset before any response looks like to http.client (repr of the exception).
_RESET = ("RemoteDisconnected", "ConnectionResetError", "BrokenPipeError")


def _closed_by_server(conn: http.client.HTTPConnection) -> bool:
    """Whether the server closed the kept connection (it reads as ready, at EOF)."""
    if conn.sock is None:
        return True
    readable, _, _ = select.select([conn.sock], [], [], 0)
    return bool(readable)


def summary(results: list[Result]) -> dict[str, Any]:
    failed = [r for r in results if r.status != 200]
    versions: dict[str, int] = {}
    for r in results:
        versions[r.version] = versions.get(r.version, 0) + 1
    latencies = sorted(r.end - r.start for r in results if r.status == 200)
    return {
        "requests": len(results),
        "failed": len(failed),
        "resent": sum(r.resent for r in results),
        "versions": versions,
        "first_failures": [asdict(r) for r in failed[:5]],
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
    }


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("body", type=Path, help="the request body (JSON)")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--max-requests", type=int, default=100_000)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--stop-file", type=Path, help="stop early once this file exists")
    parser.add_argument("--header", action="append", default=[], help="'Name: value', sent")
    args = parser.parse_args()
    load = Load(args.url, args.body.read_bytes(), args.threads, args.duration, args.max_requests)
    load.headers = dict(h.split(": ", 1) for h in args.header)
    load.stop_file = args.stop_file
    results = load.run()
    # Written whole, then renamed: a reader never sees half of it.
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(
        json.dumps(
            {
                "summary": summary(results),
                "results": [asdict(r) for r in results],
                "t0_wall": load.t0_wall,
            }
        )
    )
    tmp.rename(args.out)


if __name__ == "__main__":
    main()
