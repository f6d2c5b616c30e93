"""``databricks-connector serve``: one HTTP server derived from the manifest.

OpenAPI 3.1 (``/openapi.json``) and 2.0 with Power Automate's extensions (``/swagger.json``),
``POST /actions/{key}`` and the other routes, MCP over Streamable HTTP (``/mcp``), the
asynchronous 202 pattern for long waits, and a playground page (``/``). It needs the ``server``
extra (``pip install 'databricks-connector[server]'``: Starlette, uvicorn, the MCP SDK); nothing
here is imported unless ``serve`` runs. See docs/server.md.
"""
from __future__ import annotations


def create_app(config=None, connector=None):
    from .app import create_app as _create

    return _create(config, connector)


def serve(config) -> int:
    from .app import serve as _serve

    return _serve(config)


__all__ = ["create_app", "serve"]
