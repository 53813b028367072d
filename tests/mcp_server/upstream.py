"""A real HTTP server on loopback playing a misbehaving coderauth: the happy agent-token API by default, any
route replaceable by a test with an answer that is a list, not JSON, huge, or a slow trickle."""

from __future__ import annotations

import contextlib
import json
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[[BaseHTTPRequestHandler], None]

MANIFEST = {
    "agent_id": str(uuid.uuid4()),
    "agent_name": "main",
    "workspace_id": str(uuid.uuid4()),
    "workspace_name": "demo",
    "owner_username": "owner",
    "permission_mode": "default",
    "scopes": ["agent:connect", "agent:report"],
}
TOKENS = "/api/v2/workspaceagents/me/tokens"


def agent_token() -> str:
    return "cda_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))


def child_body() -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "token": agent_token(),
        "scopes": ["agent:connect", "agent:report"],
        "expires_at": "2030-01-01T00:00:00Z",
    }


def send_json(status: int, body: Any) -> Answer:
    return send_raw(status, json.dumps(body).encode(), "application/json")


def send_raw(status: int, content: bytes, content_type: str = "text/html") -> Answer:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(content)))
        handler.end_headers()
        handler.wfile.write(content)

    return answer


def send_huge(size: int, *, declare_length: bool) -> Answer:
    """`size` bytes of a JSON string, with or without Content-Length (then the connection's end marks it)."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if declare_length:
            handler.send_header("Content-Length", str(size))
        else:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        chunk = b"x" * 65536
        handler.wfile.write(b'"')
        for _ in range(size // len(chunk)):
            handler.wfile.write(chunk)

    return answer


def send_trickle(*, interval: float, count: int) -> Answer:
    """A 200 whose body arrives one byte every `interval` seconds: never slow enough for a read timeout."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(count))
        handler.end_headers()
        for _ in range(count):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(interval)

    return answer


class Upstream:
    """Routes by (method, path); `seen` records (method, path, token) of every request."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []
        self.minted: list[dict[str, Any]] = []
        self.routes: dict[tuple[str, str], Answer] = {
            ("GET", "/api/v2/workspaceagents/me/manifest"): send_json(200, MANIFEST),
            ("POST", TOKENS): self._mint,
        }
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.body = self.rfile.read(length) if length else b""
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                upstream.seen.append((self.command, self.path, token))
                route = upstream.routes.get((self.command, self.path))
                if route is None and self.command == "DELETE" and self.path.startswith(f"{TOKENS}/"):
                    route = send_raw(204, b"")
                if route is None:
                    route = send_json(404, {"detail": "Not found."})
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    route(self)  # the client may stop reading: the point of several tests

            do_GET = do_POST = do_PATCH = do_DELETE = _handle

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _mint(self, handler: BaseHTTPRequestHandler) -> None:
        body = child_body()
        self.minted.append(body)
        send_json(201, body)(handler)

    def __enter__(self) -> Upstream:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()

    def deletes(self) -> list[tuple[str, str]]:
        """(token id revoked, token that asked) for every DELETE of a token."""
        prefix = f"{TOKENS}/"
        return [(path.removeprefix(prefix), token) for method, path, token in self.seen if method == "DELETE"]


def in_turn(*answers: Answer) -> Answer:
    """Each request gets the next answer; the last one repeats."""
    queue = list(answers)

    def answer(handler: BaseHTTPRequestHandler) -> None:
        (queue.pop(0) if len(queue) > 1 else queue[0])(handler)

    return answer
