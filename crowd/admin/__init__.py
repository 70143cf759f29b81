"""Admin of the crowd app, one module per area (registered on import)."""

from . import assignments, core, marketplace  # noqa: F401
