"""gunicorn settings for the service: ``gunicorn -c python:fhir_cml.web.gunicorn_config
'fhir_cml:create_app()'`` (command-line options override these).

The request limits are set above the application's own (:mod:`fhir_cml.web.http`), so that a
client meets the application's, answered with an OperationOutcome: a URL over 4,096 bytes is
414, a header field over 24 KiB or more than 64 fields is 431, a bearer token over 16 KiB is 401,
a body over ``FHIR_CML_MAX_CONTENT_LENGTH`` is 413. Only a request beyond gunicorn's ceilings
(a request line over 8,190 bytes, the most gunicorn allows; a header field over 32 KiB; more
than 100 fields) gets gunicorn's own plain-text answer.
"""

from __future__ import annotations

import multiprocessing
import os

# Loopback unless told otherwise: a TLS-terminating proxy in front is the way in.
bind = os.environ.get("FHIR_CML_BIND", "127.0.0.1:8000")
# Sync workers, about one per CPU: each request is short CPU work (a CDS call waits at most its
# deadline for the EHR).
workers = int(os.environ.get("FHIR_CML_WORKERS", multiprocessing.cpu_count()))
worker_class = "sync"
timeout = 60
graceful_timeout = 30
keepalive = 5
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 32 * 1024
