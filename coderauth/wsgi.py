"""WSGI entry point (gunicorn coderauth.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coderauth.settings")
application = get_wsgi_application()
