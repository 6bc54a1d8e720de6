"""``fhir-cml serve``: the web face on werkzeug's threaded server, for a desk and for the demo.

``fhir-cml serve --demo`` needs no configuration: it serves the SMART app over the bundled
example patients at ``http://127.0.0.1:8000/demo`` with a throw-away state store, and prints the
URL to open. Without ``--demo`` the settings come from ``FHIR_CML_*`` as for gunicorn
(production runs ``gunicorn 'fhir_cml:create_app()'``, not this server).

The socket is bound before the app is made, so ``--port 0`` works and the printed URL (and the
app's public base URL) name the port actually used.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from fhir_cml.web import create_app
from fhir_cml.web.runtime import EXTENSION, Runtime


class _Deferred:
    """A WSGI app that forwards to the real one, which is made once the port is known."""

    def __init__(self) -> None:
        self.app: Flask | None = None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        assert self.app is not None
        return self.app(environ, start_response)


@dataclass
class Server:
    """A bound server with its app; ``url`` is where to open it."""

    server: BaseWSGIServer
    app: Flask
    base_url: str
    url: str
    _temporary: list[tempfile.TemporaryDirectory[str]] = field(default_factory=list)

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def shutdown(self) -> None:
        self.server.shutdown()

    def close(self) -> None:
        self.server.server_close()
        for directory in self._temporary:
            directory.cleanup()


def make(
    *,
    demo: bool,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: Mapping[str, Any] | None = None,
) -> Server:
    """Binds ``host:port`` and makes the app for it. Settings come from the environment and
    ``settings`` (embedding, tests; the public base URL defaults to the bound address there);
    demo mode sets the public base URL, demo mode and a temporary state store itself."""
    deferred = _Deferred()
    server = make_server(host, port, deferred, threaded=True)
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{server.server_port}"
    overrides: dict[str, Any] = {}
    if settings is not None:
        overrides = {"public_base_url": base, **settings}
    temporary = []
    if demo:
        directory = tempfile.TemporaryDirectory(prefix="fhir-cml-demo-")
        temporary.append(directory)
        overrides |= {
            "public_base_url": base,
            "demo": True,
            "state": str(Path(directory.name) / "demo.sqlite3"),
        }
    try:
        app = create_app(overrides)
    except Exception:
        server.server_close()
        for d in temporary:
            d.cleanup()
        raise
    deferred.app = app
    core = app.extensions[EXTENSION]
    assert isinstance(core, Runtime)
    public = core.settings.public_base_url
    url = f"{public}/demo" if demo else public
    return Server(server, app, public, url, temporary)
