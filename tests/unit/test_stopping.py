"""SIGTERM stops a run as Ctrl-C does (fhir_cml/jobs/stopping.py)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from fhir_cml.jobs.stopping import sigterm_as_interrupt


def terminated() -> None:
    with sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the signal arrives before this ends


def test_sigterm_raises_keyboard_interrupt_in_the_block_only() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="stopped by signal"):
        terminated()
    assert signal.getsignal(signal.SIGTERM) is before
