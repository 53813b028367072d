"""Sign-in and sign-out with Django's auth; `/` shows the sign-in form to anonymous visitors."""

from __future__ import annotations

from django.contrib.auth import views as auth_views

from ui.services import web_login_failed_record, web_login_record


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form):
        response = super().form_valid(form)
        web_login_record(user=form.get_user())
        return response

    def form_invalid(self, form):
        username = self.request.POST.get("username", "")
        if username:
            web_login_failed_record(username=username)
        return super().form_invalid(form)


class LogoutView(auth_views.LogoutView):
    """POST only (Django's default): a link cannot sign someone out."""
