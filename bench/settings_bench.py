"""Benchmark-only settings: the product's settings plus DRF's plaintext TokenAuthentication as a baseline.

`rest_framework.authtoken` is added here and nowhere else, so the product never ships a plaintext
token table; the extra urlconf adds one baseline view next to the product's routes.
"""

from coderauth.settings import *  # noqa: F403
from coderauth.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "rest_framework.authtoken"]
ROOT_URLCONF = "bench.urls_bench"
