"""Settings for the test suite (selected in pytest.ini): the product's settings with a fixed test key and a fast
password hasher. Nothing here weakens a check the tests are meant to exercise."""

import os

# Before the product settings read it: outside DEBUG they refuse to start without a SECRET_KEY.
os.environ.setdefault("SECRET_KEY", "test-suite-key-never-used-outside-tests")

from coderauth.settings import *  # noqa: E402, F403

# Factories create many users; the production hasher would dominate the suite's time.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The test client and the live server speak plain HTTP; coderauth/tests/test_deploy_check.py checks, in a fresh
# process, that production redirects to HTTPS.
SECURE_SSL_REDIRECT = False
