"""HttpTenantProvider against real local HTTP servers (127.0.0.1, never the internet)."""

from __future__ import annotations

import ast
import json
import logging
import socket
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from opsrecon_dagster.providers import http as http_module
from opsrecon_dagster.providers.base import (
    EnvironmentRef,
    PolicyObject,
    ProviderError,
    ProviderErrorKind,
    TenantProvider,
    content_hash,
)
from opsrecon_dagster.providers.http import HttpTenantProvider

TOKEN = "tok-SECRET-bearer-abc123"
SECRET = "sk-live-SECRET123"
ENV = EnvironmentRef("acme", "prod", "acme__prod")
LIST_PATH = "/tenants/acme__prod/policies/compliance"


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list → JSON; str/bytes → sent as is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    path: str
    authorization: str | None
    accept: str | None


class ScriptedServer:
    """A ThreadingHTTPServer whose answers are queued per request path (query included).

    The last queued reply of a path is sticky, so "always 429" is a single entry. Unknown paths
    get a 404. Every request is recorded with its Authorization header.
    """

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                reply = server._next(
                    Seen(self.path, self.headers.get("Authorization"), self.headers.get("Accept"))
                )
                if reply.delay:
                    # Interruptible so teardown does not wait for a deliberately slow answer.
                    server._stop.wait(reply.delay)
                body = reply.body
                if isinstance(body, dict | list):
                    body = json.dumps(body)
                data = body.encode() if isinstance(body, str) else (body or b"")
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # A short poll interval keeps shutdown() (and so each teardown) fast.
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def _next(self, request: Seen) -> Reply:
        with self._lock:
            self.seen.append(request)
            queue = self.routes.get(request.path)
            if not queue:
                return Reply(404, {"error": "no route"})
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def route(self, path: str, *replies: Reply) -> None:
        self.routes[path] = list(replies)

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def other_server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_provider(server: ScriptedServer, sleeps: list[float]) -> Iterator[Any]:
    made: list[HttpTenantProvider] = []

    def make(**kwargs: Any) -> HttpTenantProvider:
        kwargs.setdefault("sleep", sleeps.append)
        kwargs.setdefault("timeout_seconds", 2.0)
        provider = HttpTenantProvider(server.url, TOKEN, **kwargs)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


def item(external_id: str, name: str | None = None, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"id": external_id}
    if name is not None:
        payload["displayName"] = name
    payload.update(extra)
    return payload


# -- paging -----------------------------------------------------------------------------------


def test_paging_follows_next_link_in_order(server: ScriptedServer, make_provider: Any) -> None:
    page2 = f"{server.url}{LIST_PATH}?$skiptoken=p2"
    page3 = f"{server.url}{LIST_PATH}?$skiptoken=p3"
    first = [item("a", "Alpha", settings={"x": 1, "y": 2}), item("b", "Beta")]
    server.route(LIST_PATH, Reply(body={"value": first, "@odata.nextLink": page2}))
    server.route(
        f"{LIST_PATH}?$skiptoken=p2",
        Reply(body={"value": [item("c")], "@odata.nextLink": page3}),
    )
    server.route(f"{LIST_PATH}?$skiptoken=p3", Reply(body={"value": [item("d", "Delta")]}))

    objects = list(make_provider().list_policies(ENV, "compliance"))

    assert [o.external_id for o in objects] == ["a", "b", "c", "d"]
    assert objects[0] == PolicyObject("compliance", "a", "Alpha", content_hash(first[0]))
    assert objects[2].display_name == "c"  # no displayName → the id
    assert all(o.policy_type == "compliance" for o in objects)
    assert [s.path for s in server.seen] == [
        LIST_PATH,
        f"{LIST_PATH}?$skiptoken=p2",
        f"{LIST_PATH}?$skiptoken=p3",
    ]


def test_content_hash_ignores_key_order(server: ScriptedServer, make_provider: Any) -> None:
    # Raw JSON text so the key order on the wire really differs between the two answers.
    server.route(
        LIST_PATH,
        Reply(body='{"value": [{"id": "a", "displayName": "A", "s": {"x": 1, "y": [1, 2]}}]}'),
    )
    server.route(
        f"{LIST_PATH}/a",
        Reply(body='{"s": {"y": [1, 2], "x": 1}, "displayName": "A", "id": "a"}'),
    )
    provider = make_provider()
    (listed,) = provider.list_policies(ENV, "compliance")
    fetched = provider.fetch_policy(ENV, "compliance", "a")
    assert listed == fetched


def test_page_size_sends_top(server: ScriptedServer, make_provider: Any) -> None:
    server.route(f"{LIST_PATH}?$top=50", Reply(body={"value": [item("a")]}))
    assert [o.external_id for o in make_provider(page_size=50).list_policies(ENV, "compliance")]
    assert server.seen[0].path == f"{LIST_PATH}?$top=50"


def test_next_link_loop_is_bad_response(server: ScriptedServer, make_provider: Any) -> None:
    server.route(
        LIST_PATH, Reply(body={"value": [item("a")], "@odata.nextLink": server.url + LIST_PATH})
    )
    with pytest.raises(ProviderError) as excinfo:
        list(make_provider().list_policies(ENV, "compliance"))
    assert excinfo.value.kind is ProviderErrorKind.BAD_RESPONSE
    assert len(server.seen) == 1


def test_page_cap(server: ScriptedServer, make_provider: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(http_module, "MAX_PAGES", 3)
    for n in range(5):
        path = LIST_PATH if n == 0 else f"{LIST_PATH}?p={n}"
        nxt = f"{server.url}{LIST_PATH}?p={n + 1}"
        server.route(path, Reply(body={"value": [item(f"i{n}")], "@odata.nextLink": nxt}))
    got: list[str] = []
    with pytest.raises(ProviderError) as excinfo:
        got.extend(o.external_id for o in make_provider().list_policies(ENV, "compliance"))
    assert excinfo.value.kind is ProviderErrorKind.BAD_RESPONSE
    assert got == ["i0", "i1", "i2"]
    assert len(server.seen) == 3


@pytest.mark.parametrize(
    "body",
    [
        "not json {",
        b"\xff\xfe\x00",
        "[]",
        '{"value": {"id": "a"}}',
        '{"value": ["a"]}',
        '{"value": [{"displayName": "no id"}]}',
        '{"value": [], "@odata.nextLink": 5}',
        "[" * 100_000 + "]" * 100_000,
    ],
)
def test_malformed_page_is_bad_response(
    server: ScriptedServer, make_provider: Any, body: str | bytes
) -> None:
    server.route(LIST_PATH, Reply(body=body))
    with pytest.raises(ProviderError) as excinfo:
        list(make_provider().list_policies(ENV, "compliance"))
    assert excinfo.value.kind is ProviderErrorKind.BAD_RESPONSE


def test_oversized_response_is_bad_response(server: ScriptedServer, make_provider: Any) -> None:
    server.route(LIST_PATH, Reply(body={"value": [item("a", "x" * 5000)]}))
    with pytest.raises(ProviderError) as excinfo:
        list(make_provider(max_response_bytes=1000).list_policies(ENV, "compliance"))
    assert excinfo.value.kind is ProviderErrorKind.BAD_RESPONSE


# -- throttling and retries -------------------------------------------------------------------


def test_429_retry_after_then_success(
    server: ScriptedServer, make_provider: Any, sleeps: list[float]
) -> None:
    server.route(
        LIST_PATH,
        Reply(429, {"error": "slow down"}, {"Retry-After": "2"}),
        Reply(body={"value": [item("a")]}),
    )
    objects = list(make_provider().list_policies(ENV, "compliance"))
    assert [o.external_id for o in objects] == ["a"]
    assert sleeps == [2.0]
    assert len(server.seen) == 2


def test_429_exhausted_is_throttled_and_capped(
    server: ScriptedServer, make_provider: Any, sleeps: list[float]
) -> None:
    server.route(LIST_PATH, Reply(429, {"error": "slow down"}, {"Retry-After": "86400"}))
    provider = make_provider(max_retries=2, max_retry_after_seconds=5.0)
    with pytest.raises(ProviderError) as excinfo:
        list(provider.list_policies(ENV, "compliance"))
    err = excinfo.value
    assert err.kind is ProviderErrorKind.THROTTLED
    assert err.status_code == 429
    assert err.policy_type == "compliance"
    assert not err.kind.is_precondition
    assert sleeps == [5.0, 5.0]
    assert len(server.seen) == 3  # first try + max_retries


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, 1.0), ("soon", 1.0), ("-3", 1.0), ("nan", 1.0), ("0.25", 0.25), ("0", 0.0)],
)
def test_retry_after_parsing(
    server: ScriptedServer,
    make_provider: Any,
    sleeps: list[float],
    header: str | None,
    expected: float,
) -> None:
    headers = {} if header is None else {"Retry-After": header}
    server.route(LIST_PATH, Reply(429, headers=headers), Reply(body={"value": []}))
    assert list(make_provider().list_policies(ENV, "compliance")) == []
    assert sleeps == [expected]


def test_retry_after_http_date_in_the_past() -> None:
    assert http_module._parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_503_with_retry_after_is_retried(
    server: ScriptedServer, make_provider: Any, sleeps: list[float]
) -> None:
    server.route(LIST_PATH, Reply(503, headers={"Retry-After": "3"}), Reply(body={"value": []}))
    assert list(make_provider().list_policies(ENV, "compliance")) == []
    assert sleeps == [3.0]


def test_5xx_exhausted_is_unavailable(
    server: ScriptedServer, make_provider: Any, sleeps: list[float]
) -> None:
    server.route(LIST_PATH, Reply(502, {"error": "bad gateway"}))
    with pytest.raises(ProviderError) as excinfo:
        list(make_provider(max_retries=3).list_policies(ENV, "compliance"))
    assert excinfo.value.kind is ProviderErrorKind.UNAVAILABLE
    assert excinfo.value.status_code == 502
    assert sleeps == [0.5, 1.0, 2.0]


# -- status classification --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "precondition"),
    [
        (403, ProviderErrorKind.PERMISSION_MISSING, True),
        (401, ProviderErrorKind.CONSENT_MISSING, True),
        (404, ProviderErrorKind.BAD_RESPONSE, False),  # a listing 404 is a wrong address
        (400, ProviderErrorKind.BAD_RESPONSE, False),
        (302, ProviderErrorKind.BAD_RESPONSE, False),
    ],
)
def test_status_classification(
    server: ScriptedServer,
    make_provider: Any,
    sleeps: list[float],
    status: int,
    kind: ProviderErrorKind,
    precondition: bool,
) -> None:
    server.route(LIST_PATH, Reply(status, {"error": "no"}, {"Location": "/elsewhere"}))
    with pytest.raises(ProviderError) as excinfo:
        list(make_provider().list_policies(ENV, "compliance"))
    assert excinfo.value.kind is kind
    assert excinfo.value.kind.is_precondition is precondition
    assert excinfo.value.status_code == status
    assert sleeps == []  # not retried
    assert [s.path for s in server.seen] == [LIST_PATH]  # redirects are not followed


# -- secrets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        Reply(500, f"internal error {SECRET} token={TOKEN}"),
        Reply(403, {"error": {"message": f"denied {SECRET}", "token": TOKEN}}),
        Reply(200, f"<html>{SECRET} {TOKEN}</html>"),
    ],
)
def test_secrets_never_leak(
    server: ScriptedServer,
    make_provider: Any,
    caplog: pytest.LogCaptureFixture,
    reply: Reply,
) -> None:
    caplog.set_level(logging.DEBUG)  # urllib3/requests debug output included
    server.route(LIST_PATH, reply)
    server.route(f"{LIST_PATH}/x", reply)
    provider = make_provider(max_retries=1)
    errors: list[ProviderError] = []
    with pytest.raises(ProviderError) as excinfo:
        list(provider.list_policies(ENV, "compliance"))
    errors.append(excinfo.value)
    with pytest.raises(ProviderError) as excinfo:
        provider.fetch_policy(ENV, "compliance", "x")
    errors.append(excinfo.value)

    texts = [repr(provider), caplog.text]
    for err in errors:
        assert err.__cause__ is None
        assert err.__context__ is None
        texts += [str(err), repr(err), repr(err.args), "".join(traceback.format_exception(err))]
    for text in texts:
        assert SECRET not in text
        assert TOKEN not in text
    assert "HttpTenantProvider(" in repr(provider)


def test_transport_error_text_does_not_leak(sleeps: list[float]) -> None:
    # A closed port: requests' ConnectionError text would contain the URL and more.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = HttpTenantProvider(f"http://127.0.0.1:{port}", TOKEN, sleep=sleeps.append)
    with provider, pytest.raises(ProviderError) as excinfo:
        provider.fetch_policy(ENV, "compliance", "x")
    err = excinfo.value
    assert err.kind is ProviderErrorKind.UNAVAILABLE
    assert err.__cause__ is None
    assert err.__context__ is None
    assert str(err) == "provider_unavailable for compliance"
    assert "Connection" not in "".join(traceback.format_exception(err))


def test_bad_token_rejected_without_echo() -> None:
    with pytest.raises(ValueError, match="token") as excinfo:
        HttpTenantProvider("http://127.0.0.1:1", TOKEN + "\r\nX-Evil: 1")
    assert TOKEN not in str(excinfo.value)


@pytest.mark.parametrize(
    "base_url",
    ["ftp://example.com", "http://user:pw@example.com", "example.com/api", "http://h/x?q=1", ""],
)
def test_bad_base_url_rejected(base_url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        HttpTenantProvider(base_url, TOKEN)


# -- nextLink origin --------------------------------------------------------------------------


def test_next_link_to_other_host_is_refused(
    server: ScriptedServer, other_server: ScriptedServer, make_provider: Any
) -> None:
    other_server.route(LIST_PATH, Reply(body={"value": [item("evil")]}))
    server.route(
        LIST_PATH,
        Reply(body={"value": [item("a")], "@odata.nextLink": other_server.url + LIST_PATH}),
    )
    got: list[str] = []
    with pytest.raises(ProviderError) as excinfo:
        got.extend(o.external_id for o in make_provider().list_policies(ENV, "compliance"))
    assert excinfo.value.kind is ProviderErrorKind.BAD_RESPONSE
    assert got == ["a"]
    assert other_server.seen == []


@pytest.mark.parametrize(
    "link",
    [
        "http://localhost:{port}/x",  # same machine, different host name
        "https://127.0.0.1:{port}/x",
        "http://127.0.0.1:{port}@evil.example/x",
        "http://127.0.0.1:{port}\\@evil.example/x",
        "http://evil.example#@127.0.0.1:{port}/x",
        "/relative/x",
        "javascript:alert(1)",
    ],
)
def test_origin_check(server: ScriptedServer, link: str) -> None:
    port = server.httpd.server_address[1]
    assert http_module._origin(server.url + "/tenants") == ("http", "127.0.0.1", port)
    assert http_module._origin(link.format(port=port)) != ("http", "127.0.0.1", port)


# -- fetch ------------------------------------------------------------------------------------


def test_fetch_policy_success_and_quoting(server: ScriptedServer, make_provider: Any) -> None:
    odd_id = "a/b c?#"
    server.route(
        "/tenants/acme__prod/policies/compliance/a%2Fb%20c%3F%23",
        Reply(body=item(odd_id, "Odd", v=1)),
    )
    obj = make_provider().fetch_policy(ENV, "compliance", odd_id)
    assert obj == PolicyObject(
        "compliance", odd_id, "Odd", content_hash({"id": odd_id, "displayName": "Odd", "v": 1})
    )


def test_fetch_policy_404_is_not_found(server: ScriptedServer, make_provider: Any) -> None:
    server.route(f"{LIST_PATH}/gone", Reply(404, {"error": "gone"}))
    with pytest.raises(ProviderError) as excinfo:
        make_provider().fetch_policy(ENV, "compliance", "gone")
    assert excinfo.value.kind is ProviderErrorKind.NOT_FOUND
    assert excinfo.value.status_code == 404


def test_fetch_policy_id_mismatch_is_bad_response(
    server: ScriptedServer, make_provider: Any
) -> None:
    server.route(f"{LIST_PATH}/a", Reply(body=item("b")))
    with pytest.raises(ProviderError) as excinfo:
        make_provider().fetch_policy(ENV, "compliance", "a")
    assert excinfo.value.kind is ProviderErrorKind.BAD_RESPONSE


@pytest.mark.parametrize("bad", ["", ".", ".."])
def test_fetch_policy_rejects_path_tricks(make_provider: Any, bad: str) -> None:
    with pytest.raises(ValueError, match="segment"):
        make_provider().fetch_policy(ENV, "compliance", bad)


def test_timeout(server: ScriptedServer, make_provider: Any, sleeps: list[float]) -> None:
    server.route(f"{LIST_PATH}/slow", Reply(body=item("slow"), delay=2.0))
    with pytest.raises(ProviderError) as excinfo:
        make_provider(timeout_seconds=0.2).fetch_policy(ENV, "compliance", "slow")
    assert excinfo.value.kind is ProviderErrorKind.TIMEOUT
    assert excinfo.value.__context__ is None
    assert sleeps == []  # timeouts are not retried


# -- protocol and headers ---------------------------------------------------------------------


def test_sends_bearer_token_and_accept(server: ScriptedServer, make_provider: Any) -> None:
    server.route(LIST_PATH, Reply(body={"value": []}))
    list(make_provider().list_policies(ENV, "compliance"))
    assert [s.authorization for s in server.seen] == [f"Bearer {TOKEN}"]
    assert [s.accept for s in server.seen] == ["application/json"]


def test_is_a_tenant_provider_without_a_fault_hook(
    server: ScriptedServer, make_provider: Any
) -> None:
    provider = make_provider()
    assert isinstance(provider, TenantProvider)
    assert not hasattr(provider, "checkpoint")
    assert server.seen == []  # building it sends nothing


def test_module_does_not_import_dagster() -> None:
    tree = ast.parse(Path(http_module.__file__).read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(name == "dagster" or name.startswith("dagster.") for name in imported)
