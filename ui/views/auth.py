"""Sign-in, sign-out and password change with Django's auth; `/` shows the sign-in form to anonymous visitors."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminPasswordChangeForm
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect
from django.urls import reverse, reverse_lazy

from agents.services.sso import password_login_check
from agents.services.users import user_password_change
from core.exceptions import InvalidInput, NotPermitted
from core.http.throttles import PASSWORD_CHANGE_THROTTLES, SIGN_IN_THROTTLES, retry_after, submitted_username
from ui import oidc
from ui.services import web_login_failed_record, web_login_record

TOO_MANY_ATTEMPTS = "Too many sign-in attempts. Try again in {seconds} seconds."
NOT_AUTHORIZED_FOR_ADMIN = "You are signed in as {username}, who may not use the Django admin. Sign in as staff."


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        # The budgets of POST /api/v2/users/login, per address and per username, signed in or not: guessing
        # through the form, or through /admin/login/, is no faster.
        seconds = retry_after(request, self, SIGN_IN_THROTTLES)
        if seconds is not None:
            context = self.get_context_data(form=self.get_form(), throttled=TOO_MANY_ATTEMPTS.format(seconds=seconds))
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = str(seconds)
            return response
        try:
            password_login_check(username=submitted_username(request), method="web")
        except NotPermitted as refusal:
            # An unbound form: a bound one would check the password when the page shows its errors.
            form = self.get_form_class()(request=request)
            return self.render_to_response(self.get_context_data(form=form, refused=refusal.detail), status=403)
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        # What the page offers: the password form (CODERAUTH_PASSWORD_LOGIN), the single sign-on button.
        return {
            **super().get_context_data(**kwargs),
            "password_login": settings.CODERAUTH_PASSWORD_LOGIN,
            "sso_enabled": oidc.enabled(),
            "sso_name": settings.CODERAUTH_OIDC_NAME,
        }

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


class PasswordChangeView(auth_views.PasswordChangeView):
    """The signed-in user's new password (Django's form: the current one, the new one twice, the validators).

    Guesses of the current password spend the account's sign-in budget. The user's other sessions and tokens
    are revoked (CODERAUTH_PASSWORD_CHANGE_REVOKES) and a message counts them; this session stays signed in.
    """

    template_name = "ui/password_change.html"
    success_url = reverse_lazy("ui:password-change")
    method = "web"

    def post(self, request, *args, **kwargs):
        seconds = retry_after(request, self, PASSWORD_CHANGE_THROTTLES)
        if seconds is not None:
            messages.error(request, TOO_MANY_ATTEMPTS.format(seconds=seconds))
            form = self.get_form_class()(user=request.user)
            response = self.render_to_response(self.get_context_data(form=form), status=429)
            response["Retry-After"] = str(seconds)
            return response
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "revokes": settings.CODERAUTH_PASSWORD_CHANGE_REVOKES}

    def form_valid(self, form):
        try:
            revoked = user_password_change(
                actor=self.request.user,
                user=form.user,
                new_password=form.cleaned_data["new_password1"],
                method=self.method,
                keep_session_key=self.request.session.session_key,
            )
        except InvalidInput as error:
            form.add_error("new_password1", error.detail)
            return self.form_invalid(form)
        update_session_auth_hash(self.request, form.user)
        messages.success(
            self.request, f"Password changed. Revoked elsewhere: {revoked.summary()}. You stay signed in here."
        )
        return redirect(self.get_success_url())


class AdminPasswordChangeView(PasswordChangeView):
    """/admin/password_change/: the page above in the admin's look, in place of Django's, which neither audits
    the change nor revokes anything."""

    template_name = "registration/password_change_form.html"
    form_class = AdminPasswordChangeForm
    success_url = reverse_lazy("admin:password_change_done")
    method = "admin"

    def get_context_data(self, **kwargs):
        return {**admin.site.each_context(self.request), **super().get_context_data(**kwargs)}
