"""Sign-in and sign-out with Django's auth; `/` shows the sign-in form to anonymous visitors."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import reverse

from agents.apis.users import LoginRateThrottle
from ui.services import web_login_failed_record, web_login_record

TOO_MANY_ATTEMPTS = "Too many sign-in attempts from this address. Wait a minute and try again."
NOT_AUTHORIZED_FOR_ADMIN = "You are signed in as {username}, who may not use the Django admin. Sign in as staff."


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


class AdminLoginView(LoginView):
    """/admin/login/: the web UI's throttled, audited sign-in in place of Django's unthrottled, unaudited one.

    Only a principal the admin site accepts (active staff) is sent straight on; anyone else signed in
    sees the form again with a note, so /admin/ and this page never redirect to each other in a loop.
    """

    def dispatch(self, request, *args, **kwargs):
        self.redirect_authenticated_user = admin.site.has_permission(request)
        return super().dispatch(request, *args, **kwargs)

    def get_default_redirect_url(self):
        return reverse("admin:index")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        # The form posts to the UI's sign-in; carry the (already validated) destination with it.
        context[self.redirect_field_name] = self.get_success_url()
        if self.request.user.is_authenticated and not self.redirect_authenticated_user:
            context["not_authorized"] = NOT_AUTHORIZED_FOR_ADMIN.format(username=self.request.user.get_username())
        return context
