"""A real HTTP server on 127.0.0.1 that gives every request one fixed answer and counts
them: the echo service `allow-my-ip` asks, or an endpoint that answers an error page."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from typing import Any

STOP_TIMEOUT_S = 5


class Answering:
    """Answers GET and POST with `status`, `content_type` and `body` (all may be changed)."""

    def __init__(self, body: bytes, *, status: int = 200, content_type: str = "text/plain"):
        self.body, self.status, self.content_type = body, status, content_type
        self.requests = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(server.status)
                self.send_header("Content-Type", server.content_type)
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            do_POST = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"


@contextlib.contextmanager
def answering(
    body: bytes, *, status: int = 200, content_type: str = "text/plain"
) -> Iterator[Answering]:
    """Serve `Answering(...)` in a thread for the duration of the block."""
    service = Answering(body, status=status, content_type=content_type)
    thread = threading.Thread(target=service.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        service.server.shutdown()
        service.server.server_close()
        thread.join(timeout=STOP_TIMEOUT_S)
