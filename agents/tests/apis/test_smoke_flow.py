import pytest
from django.urls import reverse

from tests.helpers.clients import client_for_agent_token
from tests.helpers.responses import assert_status

pytestmark = pytest.mark.django_db


def test_main_flow_login_workspace_agent_token_and_mode_switch(api_client, member):
    response = api_client.post(
        reverse("agents:user-login"),
        {"username": member.username, "password": "correct horse battery staple"},
        format="json",
    )
    assert_status(response, 201)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.data['session_token']}")

    response = api_client.post(reverse("agents:workspace-list"), {"name": "dev"}, format="json")
    assert_status(response, 201)
    workspace_id = response.data["id"]
    assert response.data["permission_mode"] == "default"

    response = api_client.post(reverse("agents:agent-create", args=[workspace_id]), {"name": "main"}, format="json")
    assert_status(response, 201)
    agent_id = response.data["id"]

    response = api_client.post(reverse("agents:agent-token-list", args=[agent_id]), {"name": "ci"}, format="json")
    assert_status(response, 201)
    agent = client_for_agent_token(response.data["token"])

    assert_status(agent.get(reverse("agents:agent-manifest")), 200)
    response = agent.get(reverse("agents:agent-gitsshkey"))
    assert_status(response, 200)
    assert response.data["private_key"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")

    response = api_client.patch(
        reverse("agents:workspace-detail", args=[workspace_id]),
        {"permission_mode": "no_user_data", "reason": "lock down"},
        format="json",
    )
    assert_status(response, 200)
    assert response.data["permission_mode"] == "no-user-data"

    response = agent.get(reverse("agents:agent-gitsshkey"))
    assert_status(response, 403)
    assert response.json()["required_scope"] == "agent:gitsshkey"
    assert response.json()["permission_mode"] == "no-user-data"
