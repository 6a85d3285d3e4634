"""A local webhook receiver: a real HTTP server on loopback that records each post."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

# The path of a Slack webhook URL is its secret; nothing may ever show it.
SECRET_PATH = "/services/T000/B000/s3cr3tWebhookPath"


@dataclass
class Receiver:
    """Posts received, and the statuses to answer with (then 200)."""

    url: str
    posts: list[dict[str, Any]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self) -> list[dict[str, Any]]:
        """The posts answered with 2xx, in order."""
        with self.lock:
            return [p for p in self.posts if p["status"] < 300]

    def accepted_run_ids(self) -> list[int]:
        return [p["body"]["opsrecon"]["operation_run_id"] for p in self.accepted()]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook at ``receiver.url`` (with a secret path), answering 200 unless told."""
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            r = state["receiver"]
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with r.lock:
                status = r.answers.pop(0) if r.answers else 200
                r.posts.append(
                    {
                        "path": self.path,
                        "status": status,
                        "body": body,
                        "idempotency_key": self.headers.get("Idempotency-Key"),
                    }
                )
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["receiver"] = Receiver(url=f"http://127.0.0.1:{server.server_port}{SECRET_PATH}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["receiver"]
    finally:
        server.shutdown()
        server.server_close()
