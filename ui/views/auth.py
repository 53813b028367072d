"""Sign-in and sign-out with Django's auth; `/` shows the sign-in form to anonymous visitors."""

from __future__ import annotations

from django.contrib.auth import views as auth_views

from agents.apis.users import LoginRateThrottle
from ui.services import web_login_failed_record, web_login_record

TOO_MANY_ATTEMPTS = "Too many sign-in attempts from this address. Wait a minute and try again."


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        # The same per-address budget as POST /api/v2/users/login: guessing through the form is no faster.
        if not LoginRateThrottle().allow_request(request, self):
            context = self.get_context_data(form=self.get_form(), throttled=TOO_MANY_ATTEMPTS)
            return self.render_to_response(context, status=429)
        return super().post(request, *args, **kwargs)

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
