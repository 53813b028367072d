"""Real SIEM receivers on loopback for the streaming tests, written from the RFCs rather than from coderauth's code:
syslog over UDP (RFC 5426), over TCP with octet counting (RFC 6587) and over TLS (RFC 5425), each parsing RFC 5424
strictly, and an HTTPS-style JSON-lines receiver that checks the batch signature with the snippet of docs/audit.md.

Each records what it received; the HTTP receiver also records what it acknowledged (a 2xx), the only thing a sender
may count as delivered. A receiver can be stopped (every connection closed, as a crashed SIEM would) and started
again on the same port.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import ipaddress
import json
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.test_docs import code_blocks

ROOT = Path(__file__).resolve().parents[2]

# RFC 5424, section 6: HEADER SP STRUCTURED-DATA [SP MSG].
_SYSLOG = re.compile(
    rb"^<(?P<pri>\d{1,3})>(?P<version>[1-9]\d{0,2}) "
    rb"(?P<timestamp>-|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})) "
    rb"(?P<hostname>[\x21-\x7e]{1,255}) (?P<app>[\x21-\x7e]{1,48}) (?P<procid>[\x21-\x7e]{1,128}) "
    rb"(?P<msgid>[\x21-\x7e]{1,32}) (?P<sd>-|(?:\[[^\]]*\])+)(?: (?P<msg>.*))?$",
    re.DOTALL,
)


class ProtocolViolation(AssertionError):
    pass


@dataclass(frozen=True)
class SyslogMessage:
    facility: int
    severity: int
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    structured_data: str
    msg: str

    @property
    def event(self) -> dict:
        return json.loads(self.msg)


def parse_rfc5424(data: bytes) -> SyslogMessage:
    match = _SYSLOG.match(data)
    if not match:
        raise ProtocolViolation(f"not an RFC 5424 message: {data[:120]!r}")
    priority = int(match["pri"])
    if priority > 191 or match["version"] != b"1":
        raise ProtocolViolation(f"bad PRI or VERSION: {data[:20]!r}")
    msg = match["msg"] or b""
    if msg.startswith(b"\xef\xbb\xbf"):
        msg = msg[3:]
    dt.datetime.fromisoformat(match["timestamp"].decode().replace("Z", "+00:00"))  # a real date and time
    return SyslogMessage(
        facility=priority // 8,
        severity=priority % 8,
        timestamp=match["timestamp"].decode(),
        hostname=match["hostname"].decode(),
        app_name=match["app"].decode(),
        procid=match["procid"].decode(),
        msgid=match["msgid"].decode(),
        structured_data=match["sd"].decode(),
        msg=msg.decode("utf-8"),
    )


def read_octet_counted(stream) -> bytes | None:
    """One RFC 6587 frame, `MSG-LEN SP SYSLOG-MSG`, from a file-like stream; None at a clean end of stream."""
    digits = b""
    while True:
        char = stream.read(1)
        if not char:
            if digits:
                raise ProtocolViolation("the stream ended inside a frame's length")
            return None
        if char == b" ":
            break
        if not char.isdigit() or (not digits and char == b"0") or len(digits) > 9:
            raise ProtocolViolation(f"bad octet count {digits + char!r}")
        digits += char
    length = int(digits)
    message = stream.read(length)
    if len(message) != length:
        raise ProtocolViolation("the stream ended inside a frame")
    return message


@dataclass
class _Recording:
    messages: list[SyslogMessage] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)

    def __post_init__(self):
        self.changed = threading.Condition(self.lock)

    def add(self, data: bytes) -> None:
        with self.lock:
            try:
                self.messages.append(parse_rfc5424(data))
            except ProtocolViolation as error:
                self.violations.append(str(error))
            self.changed.notify_all()

    def events(self) -> list[dict]:
        with self.lock:
            return [message.event for message in self.messages]

    def wait_for(self, count: int, timeout: float = 30) -> list[dict]:
        """The events once at least `count` arrived (or what arrived by the deadline)."""
        with self.lock:
            self.changed.wait_for(lambda: len(self.messages) >= count, timeout)
        return self.events()


class SyslogUdpReceiver(_Recording):
    def __init__(self):
        super().__init__()
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"syslog+udp://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                data = self.socket.recv(70_000)
            except OSError:
                return
            self.add(data)

    def close(self) -> None:
        self.socket.close()


class SyslogStreamReceiver(_Recording):
    """syslog over TCP, or over TLS with `context`: octet-counted frames, any number of connections."""

    def __init__(self, context: ssl.SSLContext | None = None):
        super().__init__()
        self.context = context
        self.port = 0
        self.connections: list[socket.socket] = []
        self.accepted = 0
        self.listener: socket.socket | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"syslog+{'tls' if self.context else 'tcp'}://127.0.0.1:{self.port}"

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """Down, as a crashed receiver: the port refuses connections and every open connection is closed."""
        if self.listener is not None:
            # shutdown() first: close() alone would leave the socket listening until the blocked accept() returns.
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)
            self.listener.close()
            self.listener = None
        with self.lock:
            connections, self.connections = self.connections, []
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    close = stop

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(connection,), daemon=True).start()

    def _read(self, connection: socket.socket) -> None:
        try:
            if self.context is not None:
                connection = self.context.wrap_socket(connection, server_side=True)
            with self.lock:
                self.connections.append(connection)
                self.accepted += 1
            with connection.makefile("rb") as stream:
                while (frame := read_octet_counted(stream)) is not None:
                    self.add(frame)
        except ProtocolViolation as error:
            with self.lock:
                self.violations.append(str(error))
        except (OSError, ValueError):
            pass  # closed by stop(), or by the sender
        finally:
            connection.close()


def _signature_check():
    """The receiver's check, exactly as docs/audit.md prints it."""
    document = (ROOT / "docs" / "audit.md").read_text()
    snippets = [
        block.text for block in code_blocks(document) if block.language == "python" and "def verify" in block.text
    ]
    assert len(snippets) == 1, "docs/audit.md holds one Python `verify` snippet for receivers"
    namespace: dict = {}
    exec(snippets[0], namespace)  # noqa: S102 - the documentation's own example, run as a reader would
    return namespace["verify"]


@dataclass
class Batch:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    signature_valid: bool

    @property
    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.body.decode("ascii").splitlines()]


class HttpReceiver:
    """JSON lines over HTTP. `fail_next` batches answer 500 before the others answer 204; a batch with a bad
    signature answers 401. While `hold` is set a request waits for `release` (`arrived` says one is in flight)."""

    def __init__(self, secret: str, *, fail_next: int = 0):
        self.secret = secret
        self.fail_next = fail_next
        self.batches: list[Batch] = []
        self.hold = False
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.verify = _signature_check()
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ingest/receiver-path-token"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {key.lower(): value for key, value in self.headers.items()}
                valid = receiver.verify(
                    body,
                    headers.get("x-coderauth-audit-timestamp", ""),
                    headers.get("x-coderauth-audit-signature", ""),
                    receiver.secret,
                )
                receiver.arrived.set()
                if receiver.hold:
                    receiver.release.wait(30)
                with receiver.lock:
                    failing = receiver.fail_next > 0
                    receiver.fail_next -= int(failing)
                    status = 401 if not valid else 500 if failing else 204
                    receiver.batches.append(Batch(self.path, headers, body, status, valid))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.release.set()
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    close = stop

    def acknowledged(self) -> list[dict]:
        """Every event of every batch answered with a 2xx, in the order they were acknowledged."""
        with self.lock:
            return [event for batch in self.batches if 200 <= batch.status < 300 for event in batch.events]


def chain_verified(events: list[dict]) -> bool:
    """What a receiver does with native events (docs/audit.md, "Hash chain"): each `hash` is the SHA-256 of the
    canonical JSON of the event's other fields, and each `prev_hash` the hash before it. Raises on the first break."""
    previous = events[0]["prev_hash"]
    for event in events:
        payload = {name: value for name, value in event.items() if name != "hash"}
        digest = hashlib.sha256(
            json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
        ).hexdigest()
        assert event["prev_hash"] == previous, f"event {event['id']} does not chain to the one before it"
        assert event["hash"] == digest, f"event {event['id']} does not hash to its hash"
        previous = event["hash"]
    return True


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    certificate: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificate, self.key)
        return context


def make_tls_files(directory: Path) -> TlsFiles:
    """A throwaway CA and a certificate it signed for 127.0.0.1 and localhost."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "coderauth test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "siem.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


def wait_until(condition, timeout: float = 60) -> bool:
    """Poll `condition` until it holds or `timeout` passes (for work another process does); its last answer."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
