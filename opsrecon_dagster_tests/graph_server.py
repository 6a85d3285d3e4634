"""A local Graph-style server for the HTTP provider: real HTTP on loopback, a known token."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "tok-DEPLOYED-secret-9f8e7d"


class GraphServer:
    """Answers ``GET /tenants/<partition>/policies/<type>`` with two objects, only for the
    expected bearer token; records the Authorization headers and the paths it saw.

    A subclass may expect another ``token`` and give other answers (``answer``)."""

    token = TOKEN

    def __init__(self) -> None:
        self.auth: list[str] = []
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                auth = self.headers.get("Authorization", "")
                server.auth.append(auth)
                server.paths.append(self.path)
                if auth != f"Bearer {server.token}":
                    self.send_response(401)
                    self.end_headers()
                    return
                data = json.dumps(server.answer(self.path, auth)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # A short poll interval keeps shutdown() (and so each teardown) fast.
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    def answer(self, path: str, auth: str) -> Any:
        """The JSON body for an authorized ``GET path``."""
        policy_type = path.rstrip("/").split("/")[-1]
        return {"value": [{"id": f"{policy_type}-{i}", "displayName": f"P{i}"} for i in (1, 2)]}

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
