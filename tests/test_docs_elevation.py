"""docs/elevation.md's walk-through, pasted into bash against a live server, says and does what it shows."""

from __future__ import annotations

import json

from agents.models import AccessRequest, Workspace
from audit.models import AuditEvent
from tests.helpers.factories import AdminFactory
from tests.test_docs import ROOT, by_step, run_blocks, walkthrough_blocks


def test_elevation_walkthrough_runs(live_server, tmp_path):
    AdminFactory(username="admin")
    blocks = walkthrough_blocks(ROOT / "docs" / "elevation.md")
    steps = by_step(blocks, run_blocks(blocks, live_server=live_server, home=tmp_path))
    assert sorted(steps) == list(range(1, 7))

    assert steps[1].strip() == "no-user-data"
    refused, state = steps[2].strip().splitlines()
    assert refused == "403"
    assert json.loads(state) == {"state": "pending", "scopes": ["agent:gitsshkey"]}
    assert steps[3].strip().splitlines() == [
        "true push the v2.4.0 tag",
        '{"state":"approved","decided_by":"admin","has_expiry":true}',
    ]
    assert steps[4].strip() == "-----BEGIN OPENSSH PRIVATE KEY-----"
    assert steps[5].strip().splitlines() == ["revoked", "403", "409"]
    assert steps[6].strip().splitlines() == [
        "access_request.revoked user true",
        "access_request.approved user true",
        "access_request.created agent true",
    ]

    workspace = Workspace.objects.get(name="release")
    (access_request,) = AccessRequest.objects.filter(workspace=workspace)
    assert access_request.state == "revoked" and access_request.revoke_reason == "tag pushed"
    assert AuditEvent.objects.filter(action="access_request.approved", details__granted_seconds=300).count() == 1
