import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# Load the URL map (and so every view module) now rather than on the first request: with gunicorn's preload_app
# the workers are forked warm, and the first worker to arrive does not wait for the imports.
get_resolver().url_patterns  # noqa: B018 - the attribute loads the URLconf
