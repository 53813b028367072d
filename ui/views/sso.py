"""Single sign-on through the organisation's OpenID Provider (ui/oidc.py), and the break-glass sign-in with a
one-time code from `manage.py break_glass_signin`. Without CODERAUTH_OIDC_ISSUER the SSO routes answer 404."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import login
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View

from agents.services import sso
from agents.services.break_glass import BreakGlassRefused, break_glass_sign_in
from core.exceptions import NotPermitted
from core.http.throttles import PasswordAttemptAddressThrottle, retry_after
from ui import oidc

# The session is Django's own; the password hash plays no part in it (SSO users have none that works).
BACKEND = "django.contrib.auth.backends.ModelBackend"
# Every sign-in path shares the budget of sign-in attempts per client address (CODERAUTH_LOGIN_THROTTLE_RATE):
# each failed attempt writes an audit row, so flooding the callback or the code form is bounded like the password form.
SIGN_IN_BUDGET = (PasswordAttemptAddressThrottle,)
TOO_MANY_ATTEMPTS = "Too many sign-in attempts. Try again in {seconds} seconds."
DEACTIVATED = "Your coderauth account is deactivated. Ask an admin."
BREAK_GLASS_REFUSED = "This code is unknown, already used or expired. Ask for a new one."


def _safe_next(request, url: str) -> str:
    """`next` only when it stays on this site: a sign-in never ends on another host."""
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return settings.LOGIN_REDIRECT_URL


def _failure(request, message: str, status: int, *, retry_after_seconds: int | None = None):
    response = render(request, "registration/sso_error.html", {"message": message}, status=status)
    if retry_after_seconds is not None:
        response["Retry-After"] = str(retry_after_seconds)
    return response


class SsoLoginView(View):
    """Send the browser to the provider's authorization endpoint (GET, like following a link)."""

    def get(self, request):
        if not oidc.enabled():
            raise Http404
        redirect_uri = request.build_absolute_uri(reverse("ui:sso-callback"))
        try:
            url = oidc.authorization_url(
                request, redirect_uri=redirect_uri, next_url=_safe_next(request, request.GET.get("next", ""))
            )
        except oidc.SignInFailure as failure:
            return _failure(request, failure.message, failure.status)
        return redirect(url)


class SsoCallbackView(View):
    """The redirect URI: the provider's answer is checked (ui/oidc.py), then the user signed in (agents/services/
    sso.py). Every failure is audited as `user.login_failed` and answered with a page saying what went wrong."""

    def get(self, request):
        if not oidc.enabled():
            raise Http404
        seconds = retry_after(request, self, SIGN_IN_BUDGET)
        if seconds is not None:
            return _failure(request, TOO_MANY_ATTEMPTS.format(seconds=seconds), 429, retry_after_seconds=seconds)
        try:
            verified = oidc.verified_sign_in(request)
        except oidc.SignInFailure as failure:
            sso.sso_sign_in_failed_record(reason=failure.reason, provider_error=failure.provider_error)
            return _failure(request, failure.message, failure.status)
        try:
            signed_in = sso.sso_sign_in(claims=sso.sso_claims_from(issuer=verified.issuer, claims=verified.claims))
        except sso.SsoSignInRefused:
            return _failure(request, DEACTIVATED, 403)
        except NotPermitted as refusal:
            return _failure(request, refusal.detail, 403)
        login(request, signed_in.user, backend=BACKEND)
        return redirect(_safe_next(request, verified.next_url))


class BreakGlassView(View):
    """/login/break-glass/: the one-time code of `manage.py break_glass_signin`, typed into a form so that it never
    travels in a URL. Works whatever CODERAUTH_PASSWORD_LOGIN says, and whether or not SSO is on."""

    template_name = "registration/break_glass.html"

    def get(self, request):
        return render(request, self.template_name)

    def post(self, request):
        seconds = retry_after(request, self, SIGN_IN_BUDGET)
        if seconds is not None:
            context = {"problem": TOO_MANY_ATTEMPTS.format(seconds=seconds)}
            response = render(request, self.template_name, context, status=429)
            response["Retry-After"] = str(seconds)
            return response
        try:
            user = break_glass_sign_in(code=request.POST.get("code", "")[:100])
        except BreakGlassRefused:
            return render(request, self.template_name, {"problem": BREAK_GLASS_REFUSED}, status=403)
        login(request, user, backend=BACKEND)
        return redirect(settings.LOGIN_REDIRECT_URL)
