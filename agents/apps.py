from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Workspaces and agents"

    def ready(self) -> None:
        from agents import checks  # noqa: F401  (registers the agent-route system check)
