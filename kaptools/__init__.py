"""kaptools: structured notes and printable summaries for KAP integration therapists."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from .resources import resource_dir

__version__ = "0.1.0"


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create and wire the application; touches no database."""
    app = Flask(
        __name__,
        instance_path=(test_config or {}).get("INSTANCE_PATH")
        or os.environ.get("KAPTOOLS_INSTANCE_PATH")
        or None,
        instance_relative_config=True,
        template_folder=str(resource_dir("templates")),
        static_folder=str(resource_dir("static")),
    )
    from .config import load_config

    load_config(app, test_config)

    from . import collector, database, i18n, modality, rendering, security, web

    collector.init_app(app)
    i18n.init_app(app)
    database.init_app(app)
    modality.init_app(app)
    rendering.init_app(app)
    security.init_app(app)
    web.init_app(app)

    from .cli import register_commands

    register_commands(app)
    return app
