from django.apps import AppConfig


class PoliciesConfig(AppConfig):
    name = "policies"
    verbose_name = "Permission policies"

    def ready(self) -> None:
        from policies import checks  # noqa: F401  (registers the default-mode system check)
