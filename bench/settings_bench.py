"""Benchmark-only settings: the product's settings plus DRF's plaintext TokenAuthentication as a baseline.

`rest_framework.authtoken` is added here and nowhere else, so the product never ships a plaintext
token table; the extra urlconf adds one baseline view next to the product's routes.
"""

from coderauth.settings import *  # noqa: F403
from coderauth.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "rest_framework.authtoken"]
ROOT_URLCONF = "bench.urls_bench"
# One agent token drives thousands of requests a second: the budget is still checked on every request (its cost
# is measured) but set so high that it never refuses one.
CODERAUTH_AGENT_THROTTLE_RATE = "1000000000/s"
