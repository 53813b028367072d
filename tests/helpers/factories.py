"""factory_boy factories shared by every test package."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from agents.models import Workspace, WorkspaceAgent
from policies.models import PermissionMode
from policies.scopes import BUILTIN_MODES

PASSWORD = "correct horse battery staple"


def ensure_builtins() -> None:
    """Transactional tests (live_server) flush tables, migration data included; put it back."""
    for name, (description, scopes) in BUILTIN_MODES.items():
        PermissionMode.objects.get_or_create(
            name=name, defaults={"description": description, "scopes": list(scopes), "builtin": True}
        )
    for group in ("admin", "auditor"):
        Group.objects.get_or_create(name=group)


def mode(name: str) -> PermissionMode:
    ensure_builtins()
    return PermissionMode.objects.get(name=name)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def groups(self, create, extracted, **kwargs):
        if create and extracted:
            ensure_builtins()
            for name in extracted:
                self.groups.add(Group.objects.get(name=name))


class AdminFactory(UserFactory):
    username = factory.Sequence(lambda n: f"admin{n}")

    @factory.post_generation
    def admin_group(self, create, extracted, **kwargs):
        if create:
            ensure_builtins()
            self.groups.add(Group.objects.get(name="admin"))


class AuditorFactory(UserFactory):
    username = factory.Sequence(lambda n: f"auditor{n}")

    @factory.post_generation
    def auditor_group(self, create, extracted, **kwargs):
        if create:
            ensure_builtins()
            self.groups.add(Group.objects.get(name="auditor"))


class CustomModeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PermissionMode
        django_get_or_create = ("name",)

    name = "git-only"
    description = "Connect, report and the git SSH key; no OAuth tokens."
    scopes = factory.LazyFunction(lambda: ["agent:connect", "agent:report", "agent:gitsshkey"])


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    name = factory.Sequence(lambda n: f"workspace-{n}")
    owner = factory.SubFactory(UserFactory)
    permission_mode = factory.LazyFunction(lambda: mode("default"))


class AgentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WorkspaceAgent

    name = factory.Sequence(lambda n: f"agent-{n}")
    workspace = factory.SubFactory(WorkspaceFactory)
    permission_mode = None
