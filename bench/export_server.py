"""A FHIR server's Bulk Data side over an export already on disk, for `sync --bulk` at registry
scale (scale_bench.py --sync).

The test FHIR server (tests/fhir_server) holds everything in memory and cannot hold 100,000
patients; to measure what `fhir-cml sync --bulk --dry-run` itself needs, this serves a written
export as a server delivers one: `Patient/$export` answered 202 with a status URL, the status
answered with the manifest, the NDJSON files streamed from disk. Every search is answered with an
empty searchset (no suggestion written yet, as on a first run); nothing is written to it, so
the sync runs with --dry-run. It is a benchmark's stand-in, not a test server.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

EMPTY = json.dumps({"resourceType": "Bundle", "type": "searchset", "total": 0}).encode()


@contextmanager
def export_server(export: Path) -> Iterator[str]:
    """Serves ``export`` (a directory written by synthetic.write_export); yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(export))
    base = f"http://127.0.0.1:{server.server_address[1]}/fhir"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base
    finally:
        server.shutdown()
        server.server_close()


def _handler(export: Path) -> type[BaseHTTPRequestHandler]:
    files = {path.name: path for path in export.glob("*.ndjson")}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = urlsplit(self.path).path.removeprefix("/fhir")
            base = f"http://{self.headers['Host']}/fhir"
            if path == "/Patient/$export":
                self._send(202, b"", {"Content-Location": f"{base}/$export-status"})
            elif path == "/$export-status":
                manifest = {
                    "transactionTime": "2025-06-30T12:00:00Z",
                    "request": f"{base}/Patient/$export",
                    "requiresAccessToken": False,
                    "output": [
                        {"type": name.removesuffix(".ndjson"), "url": f"{base}/files/{name}"}
                        for name in sorted(files)
                    ],
                    "error": [],
                }
                self._send(200, json.dumps(manifest).encode())
            elif path.startswith("/files/") and path.removeprefix("/files/") in files:
                source = files[path.removeprefix("/files/")]
                self.send_response(200)
                self.send_header("Content-Type", "application/fhir+ndjson")
                self.send_header("Content-Length", str(source.stat().st_size))
                self.end_headers()
                with source.open("rb") as handle:
                    shutil.copyfileobj(handle, self.wfile, 1024 * 1024)
            else:  # a search
                self._send(200, EMPTY)

        def do_POST(self) -> None:
            body: Any = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            entries = body.get("entry", []) if isinstance(body, dict) else []
            answer = {
                "resourceType": "Bundle",
                "type": "batch-response",
                "entry": [
                    {"response": {"status": "200 OK"}, "resource": json.loads(EMPTY)}
                    for _ in entries
                ],
            }
            self._send(200, json.dumps(answer).encode())

        def do_DELETE(self) -> None:
            self._send(202, b"")

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    return Handler
