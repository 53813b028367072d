"""A real webhook receiver on loopback for the delivery tests: records every POST, can fail or hold requests."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.utils import timezone

from agents.models import WebhookDelivery


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    """`fail_first` requests answer 500 before the others answer 204 (a path ending in /fail always 500, in
    /redirect a 307 to /hook); while `hold` is set, requests wait until
    `release` is set (`arrived` tells the test that one is in flight)."""

    fail_first: int = 0
    hold: bool = False
    received: list[Received] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self):
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    failing = len(receiver.received) <= receiver.fail_first or self.path.endswith("/fail")
                receiver.arrived.set()
                if receiver.hold:
                    receiver.release.wait(30)
                if self.path.endswith("/redirect"):
                    self.send_response(307)
                    self.send_header("Location", receiver.url)
                else:
                    self.send_response(500 if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def delivery_ids(self) -> list[int]:
        return [int(request.headers["x-coderauth-delivery"]) for request in self.received]


def signature_is_valid(request: Received, secret: str) -> bool:
    """What a receiver does: recompute the HMAC over the raw body and compare in constant time."""
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, request.headers.get("x-coderauth-signature", ""))


def due_delivery(url: str, *, event: str = "access_request.created", body: str | None = None) -> WebhookDelivery:
    """An outbox row due now, as the elevation services write them."""
    return WebhookDelivery.objects.create(
        event=event,
        url=url,
        body=body or json.dumps({"event": event, "request": {"id": "r1", "scopes": ["agent:gitsshkey"]}}),
        next_attempt_at=timezone.now() - timedelta(seconds=1),
    )
