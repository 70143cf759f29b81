import os

import django
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)  # what django.core.wsgi.get_wsgi_application does

from config.handlers import AUTOSAVE_URLCONF, AvcrowdWSGIHandler  # noqa: E402 - needs the apps loaded

# Django's WSGI handler, with the HIT page's autosave taken through a shorter middleware chain (config/handlers.py)
application = AvcrowdWSGIHandler()

# Load the URL maps (and so every view module) now rather than on the first request: with gunicorn's preload_app
# the workers are forked warm, and the first worker to arrive does not wait for the imports.
get_resolver().url_patterns  # noqa: B018 - the attribute loads the URLconf
get_resolver(AUTOSAVE_URLCONF).url_patterns  # noqa: B018
