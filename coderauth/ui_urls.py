"""The admin web UI, mounted at the site root under the "ui" namespace (see ui/urls.py)."""

from ui.urls import urlpatterns

__all__ = ["urlpatterns"]
