"""The abuse suite: one agent token (or one user) tries to hurt everyone else, over a real gunicorn.

Each test runs one abuse against gunicorn with two sync workers (three for the exports: see there) on the test
database, with the limit under test lowered through the server's environment so it is reached within seconds.
Each proves two things: the limit is reached and what the abuser got stays within it (read from the database,
not from the answers), and normal traffic stays served meanwhile. Normal traffic is a probe thread that fetches
an admin's workspace list page (a signed-in web session) and another agent's manifest (its own token) in a
loop: measured alone first (the baseline), then during the abuse, where every answer must be a 200 and the
median latency must stay within a generous multiple of the baseline's (the machine is shared and noisy).

`pytest -s` prints a summary line per abuse: requests sent, refused, and the probe's medians before and during.
"""

from __future__ import annotations

import itertools
import secrets
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from agents.models import AgentToken
from agents.services.tokens import agent_token_issue
from audit import actions
from audit.models import AuditEvent
from audit.sealing import audit_seal
from tests.helpers.factories import AdminFactory, AgentFactory, AuditorFactory, UserFactory, WorkspaceFactory
from tests.reliability.harness import Person, person, signed_in_headers
from tests.reliability.servers import AppServer

pytestmark = pytest.mark.reliability

# The per-token request budget lives in each process's memory; raised here so the limits under test, which
# are shared by every process, are what refuses the abuser.
SERVER_ENVIRONMENT = {"CODERAUTH_AGENT_THROTTLE_RATE": "1000000/min"}
WORKERS = 2

# Normal traffic during an abuse: its median latency may grow to this multiple of the baseline's, plus this slack.
PROBE_LATENCY_FACTOR = 4
PROBE_LATENCY_SLACK_SECONDS = 0.25
PROBE_BASELINE_SECONDS = 2.0
PROBE_PAUSE_SECONDS = 0.02
# Enough answers during an abuse to make a median mean something.
PROBE_ANSWERS_LEAST = 5

ABUSE_THREADS = 3
ABUSE_SECONDS = 5.0


# The servers


@pytest.fixture
def start_server(transactional_db, tmp_path):
    """Starts gunicorn on the test database with extra environment; every server is stopped before the flush."""
    servers: list[AppServer] = []

    def start(*, workers: int = WORKERS, **environment: str) -> AppServer:
        server = AppServer(
            tmp_path / f"gunicorn-{len(servers)}.log",
            workers=workers,
            environment={**SERVER_ENVIRONMENT, **environment},
        )
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()


# Normal traffic


@dataclass(frozen=True)
class ProbeAnswer:
    kind: str
    status: int
    seconds: float
    body: str


class Probe:
    """Normal traffic: an admin's workspace list page, then another agent's manifest, again and again."""

    def __init__(self, base_url: str, *, admin, agent_token: str):
        self.requests = {
            "admin page": (reverse("ui:workspace-list"), signed_in_headers(admin)),
            "agent manifest": (reverse("agents:agent-manifest"), {"Authorization": f"Bearer {agent_token}"}),
        }
        self.client = httpx.Client(base_url=base_url, timeout=60)
        self.answers: list[ProbeAnswer] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def round(self) -> list[ProbeAnswer]:
        answers = []
        for kind, (path, headers) in self.requests.items():
            started = time.monotonic()
            try:
                response = self.client.get(path, headers=headers)
                status, body = response.status_code, response.text[:300]
            except httpx.TransportError as error:
                status, body = 0, repr(error)
            answers.append(ProbeAnswer(kind, status, time.monotonic() - started, body))
        return answers

    def baseline(self) -> list[ProbeAnswer]:
        """The probe alone, after a warm-up round per worker (each opens its database connection on first use)."""
        for _ in range(2 * WORKERS):
            self.round()
        answers = []
        deadline = time.monotonic() + PROBE_BASELINE_SECONDS
        while time.monotonic() < deadline:
            answers += self.round()
            time.sleep(PROBE_PAUSE_SECONDS)
        assert_served(answers)
        return answers

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.answers += self.round()
            self._stop.wait(PROBE_PAUSE_SECONDS)

    def __enter__(self) -> Probe:
        self._thread = threading.Thread(target=self._loop, name="probe", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=120)
        self.client.close()


def median(answers: list[ProbeAnswer], kind: str) -> float:
    return statistics.median(answer.seconds for answer in answers if answer.kind == kind)


def assert_served(answers: list[ProbeAnswer]) -> None:
    failed = [answer for answer in answers if answer.status != 200]
    assert not failed, f"{len(failed)} of {len(answers)} probe answers were not 200: {failed[:5]}"


def assert_normal_traffic_served(baseline: list[ProbeAnswer], during: list[ProbeAnswer]) -> None:
    """Every probe answer during the abuse was a 200, and each probe's median latency stayed within bounds."""
    assert_served(during)
    for kind in ("admin page", "agent manifest"):
        answered = sum(1 for answer in during if answer.kind == kind)
        assert answered >= PROBE_ANSWERS_LEAST, f"only {answered} {kind} probes ran during the abuse"
        before, now = median(baseline, kind), median(during, kind)
        bound = PROBE_LATENCY_FACTOR * before + PROBE_LATENCY_SLACK_SECONDS
        assert now <= bound, f"{kind}: median {now * 1000:.0f} ms during the abuse, {before * 1000:.0f} ms before"


@dataclass
class Normal:
    """The people and agent of normal traffic, apart from the abuser's."""

    admin: object
    agent_token: str

    def probe(self, server: AppServer) -> Probe:
        return Probe(server.url, admin=self.admin, agent_token=self.agent_token)


@pytest.fixture
def normal(transactional_db) -> Normal:
    bystander = UserFactory()
    agent = AgentFactory(workspace=WorkspaceFactory(owner=bystander))
    return Normal(
        admin=AdminFactory(), agent_token=agent_token_issue(actor=bystander, agent=agent, name="bystander").plaintext
    )


@dataclass
class Abuser:
    """A workspace owner (with a user API token), its agent, and the agent's root token: the stolen one."""

    owner: Person
    agent: object
    root: AgentToken
    token: str


@pytest.fixture
def abuser(transactional_db) -> Abuser:
    owner = person(UserFactory)
    agent = AgentFactory(workspace=WorkspaceFactory(owner=owner.user))
    issued = agent_token_issue(actor=owner.user, agent=agent, name="stolen")
    return Abuser(owner=owner, agent=agent, root=issued.token, token=issued.plaintext)


# The abuse


@dataclass
class Flood:
    responses: list[httpx.Response] = field(default_factory=list)
    started: datetime = field(default_factory=timezone.now)
    finished: datetime | None = None

    def statuses(self) -> Counter:
        return Counter(response.status_code for response in self.responses)

    def refused(self, status: int) -> list[dict]:
        """The bodies of the answers with `status`; a 429 must say when to retry."""
        answers = [response for response in self.responses if response.status_code == status]
        if status == 429:
            assert all(int(response.headers["Retry-After"]) >= 1 for response in answers)
        return [response.json() for response in answers]

    def windows(self, seconds: int = 60) -> int:
        """How many fixed windows of `seconds` the flood touched (a budget refills in each)."""
        return int(self.finished.timestamp() // seconds) - int(self.started.timestamp() // seconds) + 1


def flood(
    base_url: str,
    send: Callable[[httpx.Client, int], httpx.Response],
    *,
    threads: int = ABUSE_THREADS,
    seconds: float = ABUSE_SECONDS,
) -> Flood:
    """`send(client, n)` on `threads` threads at once for `seconds`; n numbers the requests from 0."""
    result = Flood()
    numbers = itertools.count()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def work() -> None:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            while time.monotonic() < deadline:
                response = send(client, next(numbers))
                with lock:
                    result.responses.append(response)

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(work) for _ in range(threads)]:
            future.result()
    result.finished = timezone.now()
    server_errors = [response for response in result.responses if response.status_code >= 500]
    assert not server_errors, f"{len(server_errors)} server errors: {server_errors[0].text[:300]}"
    return result


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def summary(abuse: str, requests: int, refused: int, baseline: list[ProbeAnswer], during: list[ProbeAnswer]) -> None:
    medians = " ".join(
        f"{kind} {median(baseline, kind) * 1000:.0f}->{median(during, kind) * 1000:.0f} ms"
        for kind in ("admin page", "agent manifest")
    )
    print(f"\n{abuse:<24} {requests:>6} requests {refused:>6} refused  probe p50 {medians}")


def fetch_one(sql: str, params: list) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def test_log_flood_is_held_to_the_agents_minute_budget(start_server, normal, abuser):
    """Big lines and empty lines from several threads with one token: 429s with Retry-After, and the agent's stored
    log rows and bytes stay within its per-minute budget; oversized lines are refused with 400 and not stored."""
    lines_budget, bytes_budget, line_max = 400, 256 * 1024, 4096
    server = start_server(
        CODERAUTH_AGENT_LOG_LINES_PER_MINUTE=str(lines_budget),
        CODERAUTH_AGENT_LOG_BYTES_PER_MINUTE=str(bytes_budget),
        CODERAUTH_AGENT_LOG_LINE_MAX_BYTES=str(line_max),
    )
    now = timezone.now().isoformat()
    batches = [
        [{"created_at": now, "level": "info", "output": "x" * line_max}] * 25,  # 100 KiB
        [{"created_at": now, "level": "info", "output": ""}] * 250,  # the rows, not the bytes
        [{"created_at": now, "level": "info", "output": "y" * (line_max + 1)}],  # one line too big
    ]
    path = reverse("agents:agent-logs")

    def send(client: httpx.Client, number: int) -> httpx.Response:
        return client.patch(path, headers=bearer(abuser.token), json={"logs": batches[number % len(batches)]})

    probe = normal.probe(server)
    baseline = probe.baseline()
    with probe:
        result = flood(server.url, send)
    assert_normal_traffic_served(baseline, probe.answers)

    statuses = result.statuses()
    assert set(statuses) <= {200, 400, 429}, statuses
    assert statuses[400] == sum(1 for number in range(len(result.responses)) if number % len(batches) == 2)
    codes = Counter(body.get("code") for body in result.refused(429))
    assert codes and set(codes) <= {"log_lines_per_minute", "log_bytes_per_minute"}, codes
    rows, stored_bytes = fetch_one(
        "SELECT count(*), coalesce(sum(octet_length(output)), 0) FROM agents_agentlog WHERE agent_id = %s",
        [abuser.agent.pk],
    )
    assert 0 < rows <= lines_budget * result.windows(), (rows, result.windows())
    assert 0 < stored_bytes <= bytes_budget * result.windows(), (stored_bytes, result.windows())
    oversized = fetch_one(
        "SELECT count(*) FROM agents_agentlog WHERE agent_id = %s AND octet_length(output) > %s",
        [abuser.agent.pk, line_max],
    )[0]
    assert oversized == 0
    summary("log flood", len(result.responses), statuses[429] + statuses[400], baseline, probe.answers)


def test_app_status_flood_is_held_to_the_agents_minute_budget(start_server, normal, abuser):
    """Big and small app statuses from several threads with one token: 429s, and the agent's stored statuses stay
    within its per-minute count and byte budgets."""
    statuses_budget, bytes_budget = 20, 8 * 1024
    server = start_server(
        CODERAUTH_APP_STATUSES_PER_MINUTE=str(statuses_budget),
        CODERAUTH_APP_STATUS_BYTES_PER_MINUTE=str(bytes_budget),
    )
    reports = [
        {"app_slug": "flood", "state": "working", "message": "m" * 160, "uri": "https://example.com/" + "a" * 1800},
        {"app_slug": "flood", "state": "idle", "message": "ok"},
    ]
    path = reverse("agents:agent-app-status")

    def send(client: httpx.Client, number: int) -> httpx.Response:
        return client.patch(path, headers=bearer(abuser.token), json=reports[number % len(reports)])

    probe = normal.probe(server)
    baseline = probe.baseline()
    with probe:
        result = flood(server.url, send)
    assert_normal_traffic_served(baseline, probe.answers)

    statuses = result.statuses()
    assert set(statuses) <= {200, 429}, statuses
    codes = Counter(body.get("code") for body in result.refused(429))
    assert codes and set(codes) <= {"app_statuses_per_minute", "app_status_bytes_per_minute"}, codes
    rows, stored_bytes = fetch_one(
        "SELECT count(*), coalesce(sum(octet_length(message) + octet_length(uri)), 0) "
        "FROM agents_appstatus WHERE agent_id = %s",
        [abuser.agent.pk],
    )
    assert 0 < rows <= statuses_budget * result.windows(), (rows, result.windows())
    assert 0 < stored_bytes <= bytes_budget * result.windows(), (stored_bytes, result.windows())
    summary("app-status flood", len(result.responses), statuses[429], baseline, probe.answers)


def test_child_token_flood_and_deep_chain_stay_within_the_caps(start_server, normal, abuser):
    """A chain of children minted from children stops at the depth cap (409), and a flood of mints from several
    threads stops at the live-children cap (409): the agent never holds more live children, or a deeper one."""
    children_cap, depth_cap = 10, 3
    server = start_server(
        CODERAUTH_AGENT_MAX_LIVE_CHILD_TOKENS=str(children_cap), CODERAUTH_AGENT_TOKEN_MAX_DEPTH=str(depth_cap)
    )
    path = reverse("agents:agent-child-token")
    probe = normal.probe(server)
    baseline = probe.baseline()
    with probe:
        # The chain: each child mints the next, until the cap refuses.
        chain, depth_refusals = [abuser.token], []
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for _ in range(depth_cap + 3):
                response = client.post(path, headers=bearer(chain[-1]), json={"scopes": ["agent:connect"]})
                if response.status_code == 201:
                    chain.append(response.json()["token"])
                else:
                    assert response.status_code == 409, response.text
                    depth_refusals.append(response.json())
        # The flood: mints from the root and from a child, on several threads at once.
        mint_from = [abuser.token, chain[1]]

        def send(client: httpx.Client, number: int) -> httpx.Response:
            return client.post(path, headers=bearer(mint_from[number % 2]), json={"scopes": ["agent:connect"]})

        result = flood(server.url, send, threads=4)
    assert_normal_traffic_served(baseline, probe.answers)

    assert len(chain) == depth_cap + 1, f"the chain grew {len(chain) - 1} deep"
    assert depth_refusals and {body.get("code") for body in depth_refusals} == {"token_depth"}, depth_refusals
    statuses = result.statuses()
    assert set(statuses) <= {201, 409}, statuses
    assert {body.get("code") for body in result.refused(409)} == {"live_child_tokens"}
    children = AgentToken.objects.filter(
        agent=abuser.agent, parent__isnull=False, revoked_at__isnull=True, expires_at__gt=timezone.now()
    )
    assert children.count() == children_cap
    assert max(AgentToken.objects.filter(agent=abuser.agent).values_list("depth", flat=True)) == depth_cap
    summary("child-token flood", len(result.responses) + len(chain) - 1, statuses[409], baseline, probe.answers)


def test_replayed_revoked_children_write_one_rejection_row_per_agent_per_period(start_server, normal, abuser):
    """Children minted up to the cap, the tree revoked, then every child replayed in a loop: 401s throughout, and
    the agent's `agent_token.rejected` rows stay at one per period, each counting the refusals it stands for."""
    children_cap, period = 10, 2
    server = start_server(
        CODERAUTH_AGENT_MAX_LIVE_CHILD_TOKENS=str(children_cap), CODERAUTH_LAST_USED_RESOLUTION_SECONDS=str(period)
    )
    children = []
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for _ in range(children_cap):
            response = client.post(reverse("agents:agent-child-token"), headers=bearer(abuser.token), json={})
            assert response.status_code == 201, response.text
            children.append(response.json()["token"])
        one_more = client.post(reverse("agents:agent-child-token"), headers=bearer(abuser.token), json={})
        assert one_more.status_code == 409, one_more.text
        revoked = client.delete(
            reverse("agents:agent-token-detail", args=[abuser.agent.pk, abuser.root.pk]),
            headers=bearer(abuser.owner.token),
        )
        assert revoked.status_code == 204, revoked.text
    path = reverse("agents:agent-manifest")

    def send(client: httpx.Client, number: int) -> httpx.Response:
        return client.get(path, headers=bearer(children[number % len(children)]))

    probe = normal.probe(server)
    baseline = probe.baseline()
    with probe:
        result = flood(server.url, send, threads=4, seconds=3 * period + 1)
    assert_normal_traffic_served(baseline, probe.answers)

    assert result.statuses() == Counter({401: len(result.responses)})
    rows = list(AuditEvent.objects.filter(action=actions.AGENT_TOKEN_REJECTED, agent_id=abuser.agent.pk).order_by("id"))
    elapsed = (result.finished - result.started).total_seconds()
    assert 2 <= len(rows) <= elapsed // period + 1, f"{len(rows)} rows in {elapsed:.1f} s"
    folded = [row.details.get("folded", 0) for row in rows]
    assert any(count > 0 for count in folded), folded
    assert len(rows) + sum(folded) <= len(result.responses)
    summary("revoked-child replay", len(result.responses), len(result.responses), baseline, probe.answers)


def test_listing_many_tokens_is_paged_and_bounded(start_server, normal, abuser):
    """An agent with a thousand tokens, listed over and over from several threads: every page holds at most the
    maximum page size and a bounded number of bytes, a larger page size is refused with 400, and walking the pages
    sees every token exactly once."""
    tokens, default_size, max_size = 1000, 50, 200
    # The item serialised is ~350 bytes; the page bound leaves room for the envelope and the next link.
    page_bytes_most = max_size * 1024
    server = start_server(CODERAUTH_PAGE_SIZE=str(default_size), CODERAUTH_MAX_PAGE_SIZE=str(max_size))
    now = timezone.now()
    # Straight into the table: these tokens are listed, never presented, and issuing a thousand through the
    # service would spend most of the test's time on their audit rows.
    AgentToken.objects.bulk_create(
        AgentToken(
            agent=abuser.agent,
            name=f"many-{number}",
            digest=secrets.token_hex(32),
            hint="cda_…fake",
            scopes=["agent:connect"],
            created_at=now - timedelta(seconds=number),
            expires_at=now + timedelta(days=1),
        )
        for number in range(tokens)
    )
    path = reverse("agents:agent-token-list", args=[abuser.agent.pk])
    queries = [{}, {"page_size": str(max_size)}, {"page_size": "100000"}]

    def send(client: httpx.Client, number: int) -> httpx.Response:
        return client.get(path, headers=bearer(abuser.owner.token), params=queries[number % len(queries)])

    probe = normal.probe(server)
    baseline = probe.baseline()
    with probe:
        result = flood(server.url, send)
        seen, pages, url = [], 0, f"{server.url}{path}?page_size={max_size}"
        with httpx.Client(timeout=60) as client:
            while url:
                page = client.get(url, headers=bearer(abuser.owner.token))
                assert page.status_code == 200, page.text
                seen += [item["id"] for item in page.json()["results"]]
                pages, url = pages + 1, page.json()["next"]
    assert_normal_traffic_served(baseline, probe.answers)

    statuses = result.statuses()
    assert set(statuses) == {200, 400}, statuses
    for response in result.responses:
        if response.status_code == 200:
            assert len(response.json()["results"]) <= max_size
            assert len(response.content) <= page_bytes_most, len(response.content)
            assert response.json()["next"]
    assert all("page_size" in body for body in result.refused(400))
    sizes = Counter(len(response.json()["results"]) for response in result.responses if response.status_code == 200)
    assert set(sizes) == {default_size, max_size}, sizes
    assert len(seen) == len(set(seen)) == tokens + 1  # and the root token
    assert pages == -(-(tokens + 1) // max_size)
    summary("many-token listing", len(result.responses) + pages, statuses[400], baseline, probe.answers)


@pytest.fixture
def client_sockets(start_server):
    """Raw client sockets, closed before the servers stop (after start_server): a worker blocked sending to one
    is freed by its close, whatever the test got to."""
    sockets: list[socket.socket] = []
    yield sockets
    for sock in sockets:
        sock.close()


def stalled_export(server: AppServer, token: str, sockets: list[socket.socket]) -> tuple[socket.socket, bytes]:
    """A raw HTTP request for an export that reads the answer's headers and then nothing: a tiny receive buffer
    (set before connecting, so the kernel does not grow it) lets the server's send buffer fill fast."""
    sock = socket.socket()
    sockets.append(sock)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", server.port))
    request = (
        f"GET {reverse('audit:audit-export')}?format=csv HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1024)
        assert chunk, f"the export closed before its headers: {head!r}"
        head += chunk
    return sock, head.split(b"\r\n\r\n")[0]


def drain(sock: socket.socket, *, within: float) -> tuple[bytes, bool]:
    """What is still to come on a stalled socket, and whether the server closed it within `within` seconds."""
    sock.settimeout(within)
    received = b""
    try:
        while chunk := sock.recv(1 << 20):
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        return received, False
    finally:
        sock.close()
    return received, True


SEED_AUDIT_SQL = """
INSERT INTO audit_auditevent
    (time, action, actor_type, actor, details, user_agent, request_id, prev_hash, hash)
SELECT now() - interval '1 hour' + g * interval '1 millisecond', 'agent_token.issued', 'system', 'seed',
       jsonb_build_object('padding', repeat('p', 300)), '', md5('seed' || g), '', ''
FROM generate_series(1, %s) AS g
"""


def test_stalled_exports_are_capped_and_cut_off_without_starving_the_server(start_server, normal, client_sockets):
    """Two auditors' exports whose readers stall after the headers, and a third export: the third is refused (429,
    the total cap), the stalled ones are cut off after the stall timeout and their slots freed, and normal
    traffic is served throughout. This is the starvation attack: stalled exports used to hold every worker.

    Three workers here: the total cap (2) must stay below the worker count, so a worker is always free."""
    stall_seconds = 3
    auditors = [person(AuditorFactory) for _ in range(3)]
    with connection.cursor() as cursor:
        cursor.execute(SEED_AUDIT_SQL, [100_000])  # ~45 MB of CSV: far more than the socket buffers hold
    audit_seal(wait_seconds=5)  # as seal_audit would have: the exports then need not seal 100,000 rows first
    server = start_server(
        workers=3,
        CODERAUTH_EXPORTS_PER_USER="1",
        CODERAUTH_EXPORTS_TOTAL="2",
        CODERAUTH_EXPORT_STALL_SECONDS=str(stall_seconds),
        # The recommended worker timeout: gunicorn's own 30 s would otherwise end a stalled worker too.
        GUNICORN_CMD_ARGS="--timeout 600",
    )
    probe = normal.probe(server)
    baseline = probe.baseline()
    with probe:
        stalled = [stalled_export(server, auditor.token, client_sockets) for auditor in auditors[:2]]
        for _, head in stalled:
            assert head.startswith(b"HTTP/1.1 200"), head
        with httpx.Client(base_url=server.url, timeout=60) as client:
            third = client.get(reverse("audit:audit-export"), headers=bearer(auditors[2].token))
            assert third.status_code == 429, third.text
            assert third.json()["code"] == "exports_total"
            assert int(third.headers["Retry-After"]) >= 1
            # Nothing is read from the stalled sockets: once the server's send has blocked for the stall timeout
            # it cuts them off, and their slots free up: the refused export then starts streaming.
            refused_at = time.monotonic()
            freed_after = None
            while freed_after is None and time.monotonic() - refused_at < stall_seconds + 20:
                time.sleep(0.5)
                with client.stream("GET", reverse("audit:audit-export"), headers=bearer(auditors[2].token)) as again:
                    if again.status_code == 200:
                        assert next(again.iter_bytes())
                        freed_after = time.monotonic() - refused_at
                    else:
                        assert again.status_code == 429, again.read()
            assert freed_after is not None, "the stalled exports still held every slot"
        # Both are cut off by now (the second started a moment after the first): what is left on their sockets
        # ends without the chunked body's last, empty chunk.
        time.sleep(stall_seconds + 1)
        for sock, _ in stalled:
            tail, closed = drain(sock, within=10)
            assert closed, "a stalled export's connection was left open"
            assert not tail.endswith(b"\r\n0\r\n\r\n"), "a stalled export was streamed to its end"
    assert_normal_traffic_served(baseline, probe.answers)
    summary("stalled exports", 3, 1, baseline, probe.answers)
    print(f"  a slot was free again {freed_after:.1f} s after the third export was refused")


def test_the_probe_check_fails_on_errors_and_on_late_answers():
    """The check on normal traffic can fail: a non-200 answer, or a median latency past the bound, fails it."""
    fast = [ProbeAnswer(kind, 200, 0.01, "") for kind in ("admin page", "agent manifest") for _ in range(10)]
    assert_normal_traffic_served(fast, fast)
    failed = [*fast[:-1], ProbeAnswer("agent manifest", 503, 0.01, "")]
    late = [ProbeAnswer(answer.kind, 200, 1.0, "") for answer in fast]
    for during in (failed, late):
        with pytest.raises(AssertionError):
            assert_normal_traffic_served(fast, during)
