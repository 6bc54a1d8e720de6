"""The real service process for end-to-end tests and benchmarks: gunicorn on loopback.

    with run_service({"FHIR_CML_PUBLIC_BASE_URL": ...}, workers=2) as service:
        requests.get(service.url + "/healthz")

gunicorn binds port 0 and says which port it got ("Listening at: ..."), so there is no race for
a free port. ``JwksServer`` publishes an EHR's JWK Set over HTTP for the service to fetch.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import requests

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")
_LISTENING = re.compile(rb"Listening at: (http://[0-9.]+:\d+)")


@dataclass
class ServiceProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def json_lines(self) -> list[dict[str, Any]]:
        found = []
        for line in self.output().splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found

    def worker_pids(self) -> list[int]:
        result = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.process.pid)],
            capture_output=True,
            text=True,
            check=False,
        )
        return [int(p) for p in result.stdout.split()]


@contextmanager
def run_service(
    env: Mapping[str, str],
    *,
    workers: int = 2,
    threads: int = 1,
    timeout: float = 60.0,
    extra: tuple[str, ...] = (),
) -> Iterator[ServiceProcess]:
    """gunicorn 'fhir_cml:create_app()' with ``env`` added to the environment."""
    command = [
        str(GUNICORN),
        "fhir_cml:create_app()",
        "--bind",
        "127.0.0.1:0",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--graceful-timeout",
        "5",
        # A worker busy past gunicorn's default 30 s is killed and its connection reset; on a
        # loaded CI machine the first requests (imports, validation) can take that long.
        "--timeout",
        "120",
        *extra,
    ]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_CML_")}
    full_env.update(env)
    log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        command, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        url = _wait(process, log, timeout)
        yield ServiceProcess(url, process, log)
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(
                f"gunicorn exited on its own (code {process.returncode}):\n"
                + log.read().decode("utf-8", "replace")[-20000:]
            )
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def _wait(process: subprocess.Popen[bytes], log: IO[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    url: str | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError("gunicorn exited:\n" + log.read().decode("utf-8", "replace"))
        if url is None:
            log.seek(0)
            match = _LISTENING.search(log.read())
            if match:
                url = match.group(1).decode()
        if url is not None:
            try:
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return url
            except requests.RequestException:
                pass
        time.sleep(0.05)
    log.seek(0)
    raise RuntimeError("gunicorn did not start in time:\n" + log.read().decode("utf-8", "replace"))


class JwksServer:
    """Serves a JWK Set at ``{url}/jwks`` on loopback (the EHR's published keys)."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        body = json.dumps(jwks).encode()
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                served.hits += 1
                self.send_response(200 if self.path == "/jwks" else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                if self.path == "/jwks":
                    self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self.hits = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> JwksServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
