"""A run stopped by SIGTERM ends as one stopped by Ctrl-C.

Schedulers and service managers (cron's kill, systemd, Kubernetes, a batch system's time limit)
stop a job with SIGTERM, whose default ends the process on the spot: worker processes would be
left running, and the work files - a Bulk export's partitions, the export downloaded by sync,
an output file half written - left on disk, several GB for a registry. Raised as
KeyboardInterrupt instead, the run stops where Ctrl-C would stop it, and cleans up as it does.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt while in the block (only the main thread gets signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"stopped by signal {signum}")
