"""A download whose reader stops reading is cut off by a real gunicorn, freeing its worker and its export slot."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from django.db import connection
from django.urls import reverse

from agents.services.users import user_token_issue
from audit.sealing import audit_seal
from tests.helpers.factories import AuditorFactory
from tests.reliability.servers import AppServer

STALL_SECONDS = 2
# ~35 MB of CSV: far more than the socket buffers between the server and a reader that reads nothing.
SEED_ROWS = 50_000
SEED_AUDIT_SQL = """
INSERT INTO audit_auditevent (time, action, actor_type, actor, details, user_agent, request_id, prev_hash, hash)
SELECT now() - interval '1 hour' + g * interval '1 millisecond', 'user.created', 'system', 'seed',
       jsonb_build_object('padding', repeat('p', 500)), '', md5(g::text), '', ''
FROM generate_series(1, %s) AS g
"""


@pytest.fixture
def server(transactional_db, tmp_path):
    """gunicorn with two sync workers, as operations.md recommends them, and a short stall cut-off."""
    app = AppServer(
        tmp_path / "gunicorn.log", workers=2, environment={"CODERAUTH_EXPORT_STALL_SECONDS": str(STALL_SECONDS)}
    )
    try:
        app.wait_ready()
        yield app
    finally:
        app.stop()


def stalled_export(server: AppServer, token: str) -> socket.socket:
    """Ask for the export, read its headers, then read nothing more. A tiny receive buffer (set before connecting,
    so the kernel does not grow it) lets the server's send buffer fill fast."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(
        f"GET {reverse('audit:audit-export')}?format=csv HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1024)
        assert chunk, f"the export closed before its headers: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


def test_a_stalled_download_is_cut_off_and_frees_its_worker_and_slot(server):
    """Security: readers that stall after the headers used to hold a worker each until gunicorn's own timeout,
    so two of them left `GET /users/me` unanswered. Now the blocked send fails after the stall cut-off: the
    connection is closed before the end of the file, the export's slot is free again, and other requests are
    answered meanwhile by the other worker."""
    auditor = AuditorFactory()
    token = user_token_issue(user=auditor, name="stall").plaintext
    headers = {"Authorization": f"Bearer {token}"}
    with connection.cursor() as cursor:
        cursor.execute(SEED_AUDIT_SQL, [SEED_ROWS])
    # Sealed here, as seal_audit would have: otherwise the export seals 50,000 rows before its first byte, and on a
    # busy machine the headers can come later than this test's reader waits.
    audit_seal(wait_seconds=5)

    stalled = stalled_export(server, token)
    started = time.monotonic()
    with stalled, httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        assert client.get(reverse("agents:user-me")).status_code == 200
        # While the stalled export holds the user's slot, a second one is refused before any byte.
        refused = client.get(reverse("audit:audit-export"), params={"action": "user.deleted"})
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "exports_per_user"

        freed_after = None
        while freed_after is None and time.monotonic() - started < STALL_SECONDS + 20:
            time.sleep(0.25)
            again = client.get(reverse("audit:audit-export"), params={"action": "user.deleted"})
            if again.status_code == 200:
                freed_after = time.monotonic() - started
            else:
                assert again.status_code == 429, again.text
        assert freed_after is not None, f"the stalled export still holds its slot:\n{server.output()}"

        # The server closed the stalled connection: what was left in the buffers ends without the chunked
        # body's last, empty chunk, so the client knows the file is incomplete.
        stalled.settimeout(10)
        tail = b""
        try:
            while chunk := stalled.recv(1 << 20):
                tail += chunk
        except ConnectionResetError:
            pass
        assert not tail.endswith(b"\r\n0\r\n\r\n"), "the stalled export was streamed to its end"
        assert client.get(reverse("agents:user-me")).status_code == 200
