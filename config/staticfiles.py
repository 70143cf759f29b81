"""Static files in production: hashed names (cached for a year by browsers) and gzip/brotli copies, made by
`collectstatic` when the image is built and served by WhiteNoise."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticStorage(CompressedManifestStaticFilesStorage):
    # ES modules import each other ("./api.js"): rewrite those imports to the hashed names too, so a new release
    # never mixes a new app.js with a cached old api.js
    support_js_module_import_aggregation = True
