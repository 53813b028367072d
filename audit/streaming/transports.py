"""Sending a batch of events to one sink, and knowing when the receiver has acknowledged it.

- syslog+udp: each event one datagram; sent is all UDP can say.
- syslog+tcp, syslog+tls: the batch's messages, octet-counted, on one connection kept between batches. Acknowledged
  once every byte was written and the receiver's TCP stack acknowledged it (the socket's unacknowledged bytes, read
  with the SIOCOUTQ ioctl on Linux, fall to zero). A receiver that went away meanwhile resets the connection
  instead, and the batch counts as failed. What a receiver's own process loses after its host acknowledged is out
  of reach of syslog over TCP: HTTPS acknowledges after the receiver's code has run.
- https: one POST of JSON lines, signed; acknowledged by a 2xx answer.

A failure raises DeliveryFailed with a short reason that holds nothing of the URL but its host.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import select
import socket
import ssl
import struct
import termios
import time
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from audit.streaming.messages import octet_counted, syslog_hostname, syslog_message
from audit.streaming.sinks import HTTPS, SYSLOG_TLS, SYSLOG_UDP, Sink

# Every phase of a delivery (connect, write, the receiver's acknowledgement, an HTTP answer) ends within this.
SEND_TIMEOUT_SECONDS = 5.0
ERROR_MAX_CHARS = 300
# The largest UDP payload IPv4 can carry.
UDP_MAX_BYTES = 65_507

CONTENT_TYPE = "application/x-ndjson"
TIMESTAMP_HEADER = "X-Coderauth-Audit-Timestamp"
SIGNATURE_HEADER = "X-Coderauth-Audit-Signature"
USER_AGENT = "coderauth-audit-stream"

Message = tuple[dict[str, Any], str]  # (the row, its JSON line)


class DeliveryFailed(Exception):
    """The receiver did not acknowledge the batch; the message is short and holds no secret."""


class Transport(Protocol):
    def send(self, messages: list[Message]) -> None: ...

    def close(self) -> None: ...


def _reason(error: BaseException, sink: Sink) -> str:
    """The failure in a few words. An HTTP library may quote the URL, and its path or query may hold a token."""
    text = f"{type(error).__name__}: {error}".replace(sink.url, sink.address)
    path = urlsplit(sink.url).path
    if len(path) > 1:
        text = text.replace(path, "…")
    return text[:ERROR_MAX_CHARS]


def tls_context(ca_file: str) -> ssl.SSLContext:
    """Certificates and host names always verified: against the system's CAs, or `ca_file` alone when given."""
    return ssl.create_default_context(cafile=ca_file or None)


def audit_stream_signature(*, body: bytes, timestamp: str, secret: str) -> str:
    """`sha256=<hex HMAC-SHA256 of "<timestamp>." + body>`: the timestamp is signed, so a replayed batch is
    recognisable by its age."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class SyslogUdpTransport:
    def __init__(self, sink: Sink):
        self.sink = sink
        self.hostname = syslog_hostname()
        self.socket: socket.socket | None = None

    def send(self, messages: list[Message]) -> None:
        try:
            if self.socket is None:
                # Connected: an ICMP "port unreachable" surfaces as an error on a later send.
                family, kind, proto, _, address = socket.getaddrinfo(
                    self.sink.host, self.sink.port, type=socket.SOCK_DGRAM
                )[0]
                self.socket = socket.socket(family, kind, proto)
                self.socket.settimeout(SEND_TIMEOUT_SECONDS)
                self.socket.connect(address)
            for row, line in messages:
                datagram = syslog_message(row, line, hostname=self.hostname)
                if len(datagram) > UDP_MAX_BYTES:
                    raise DeliveryFailed(
                        f"event {row['id']} is {len(datagram)} bytes, more than a UDP datagram holds: "
                        "use syslog+tcp:// or syslog+tls://"
                    )
                self.socket.send(datagram)
        except OSError as error:
            self.close()
            raise DeliveryFailed(_reason(error, self.sink))

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None


def _unacknowledged_bytes(sock: socket.socket) -> int | None:
    """Bytes written but not yet acknowledged by the peer's TCP stack (Linux's SIOCOUTQ); None where unsupported."""
    try:
        return struct.unpack("I", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except (OSError, AttributeError):
        return None


class SyslogStreamTransport:
    """syslog+tcp and syslog+tls: one connection, reused while the receiver keeps it open."""

    def __init__(self, sink: Sink):
        self.sink = sink
        self.hostname = syslog_hostname()
        self.socket: socket.socket | None = None
        self.context = tls_context(sink.ca_file) if sink.scheme == SYSLOG_TLS else None

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.sink.host, self.sink.port), timeout=SEND_TIMEOUT_SECONDS)
        if self.context is not None:
            try:
                sock = self.context.wrap_socket(sock, server_hostname=self.sink.host)
            except BaseException:
                sock.close()
                raise
        return sock

    def _still_open(self) -> bool:
        """Whether the receiver has kept the connection open: it sends nothing, so anything to read is its close."""
        assert self.socket is not None
        readable, _, _ = select.select([self.socket], [], [], 0)
        if not readable:
            return True
        self.socket.setblocking(False)
        try:
            return self.socket.recv(4096) != b""  # data (a TLS session ticket) means open; b"" means closed
        except (BlockingIOError, ssl.SSLWantReadError):
            return True
        except OSError:
            return False
        finally:
            self.socket.settimeout(SEND_TIMEOUT_SECONDS)

    def _wait_acknowledged(self) -> None:
        assert self.socket is not None
        deadline = time.monotonic() + SEND_TIMEOUT_SECONDS
        pause = 0.0005
        while True:
            pending = _unacknowledged_bytes(self.socket)
            if not pending:
                return
            error = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise OSError(error, f"the receiver reset the connection ({error})")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the receiver left {pending} bytes unacknowledged for {SEND_TIMEOUT_SECONDS:g} s")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def send(self, messages: list[Message]) -> None:
        frames = b"".join(octet_counted(syslog_message(row, line, hostname=self.hostname)) for row, line in messages)
        try:
            if self.socket is not None and not self._still_open():
                self.close()
            if self.socket is None:
                self.socket = self._connect()
            self.socket.sendall(frames)
            self._wait_acknowledged()
        except (OSError, ssl.SSLError) as error:
            self.close()
            raise DeliveryFailed(_reason(error, self.sink))

    def close(self) -> None:
        if self.socket is not None:
            try:
                self.socket.close()
            finally:
                self.socket = None


class HttpsTransport:
    """One POST per batch: JSON lines, signed over the timestamp and the body. Redirects are not followed."""

    def __init__(self, sink: Sink):
        self.sink = sink
        verify: ssl.SSLContext | bool = tls_context(sink.ca_file) if sink.scheme == HTTPS else False
        self.client = httpx.Client(verify=verify, timeout=httpx.Timeout(SEND_TIMEOUT_SECONDS), follow_redirects=False)

    def send(self, messages: list[Message]) -> None:
        body = "".join(line + "\n" for _, line in messages).encode("ascii")
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": CONTENT_TYPE,
            "User-Agent": USER_AGENT,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: audit_stream_signature(
                body=body, timestamp=timestamp, secret=settings.CODERAUTH_AUDIT_STREAM_HMAC_SECRET
            ),
        }
        try:
            # Only the status line and headers are waited for; the answer's body is never read.
            with self.client.stream("POST", self.sink.url, content=body, headers=headers) as response:
                status = response.status_code
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as error:
            raise DeliveryFailed(_reason(error, self.sink))
        if not 200 <= status < 300:
            raise DeliveryFailed(f"HTTP {status} from {self.sink.address}")

    def close(self) -> None:
        self.client.close()


def transport_for(sink: Sink) -> Transport:
    if sink.scheme == SYSLOG_UDP:
        return SyslogUdpTransport(sink)
    if sink.is_syslog:
        return SyslogStreamTransport(sink)
    return HttpsTransport(sink)
