"""The admin web UI (the UI issue fills these in)."""

from django.urls import path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/api/schema/docs/", permanent=False), name="home"),
]
