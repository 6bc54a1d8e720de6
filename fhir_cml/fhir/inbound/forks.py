"""Tasks in forked processes, a few at a time (docs/scale.md "Worker processes").

A task runs in a process forked for it, which inherits what the task needs rather than being sent
it, sends its result back through a pipe and ends with ``os._exit``: the memory of what it read
goes back to the system at once, where freeing millions of parsed objects one by one would cost
about two thirds of parsing them; for the same reason it never collects cycles.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import sys
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any


def can_fork() -> bool:
    """Whether tasks can run in forked processes here (not on Windows)."""
    return "fork" in multiprocessing.get_all_start_methods()


class TaskFailed(RuntimeError):
    """A task raised (its traceback is the message) or its process ended without a result."""


class Forks:
    """The tasks running, by a key the caller chooses; :meth:`stop` ends those still running."""

    def __init__(self) -> None:
        self._context = multiprocessing.get_context("fork")
        self._running: dict[int, tuple[BaseProcess, Connection]] = {}
        # Processes whose result is in, still ending: a process with a partition's memory takes
        # 10-30 ms to give it back, which the next task need not wait for.
        self._ending: list[BaseProcess] = []

    def __len__(self) -> int:
        return len(self._running)

    def start(self, key: int, task: Callable[[], Any]) -> None:
        # A forked process inherits unwritten buffers: none may be pending.
        sys.stdout.flush()
        sys.stderr.flush()
        self._reap()
        receiving, sending = self._context.Pipe(duplex=False)
        # The child closes the reading ends of its pipe and of the other tasks' pipes: were the
        # parent gone, a pipe nobody else reads fails the sending at once rather than blocking.
        readers = [receiving, *(connection for _, connection in self._running.values())]
        process = self._context.Process(target=_child, args=(task, sending, readers), daemon=True)
        process.start()
        sending.close()
        self._running[key] = (process, receiving)

    def ready(self, timeout: float | None) -> list[int]:
        """The keys of the tasks whose result (or end) is there to read, within ``timeout`` s
        (None: once one is)."""
        by_connection = {connection: key for key, (_, connection) in self._running.items()}
        found = wait(list(by_connection), timeout)
        return [by_connection[connection] for connection in found]  # type: ignore[index]

    def result(self, key: int) -> Any:
        """The task's result, once it is sent; its OSError raised again here (a full disk)."""
        process, connection = self._running.pop(key)
        try:
            outcome = connection.recv()
        except EOFError:
            process.join()
            outcome = ("failed", f"it ended without a result (exit code {process.exitcode})")
        finally:
            connection.close()
        self._ending.append(process)  # joined later (_reap, stop): its result does not wait
        if outcome[0] == "oserror":
            raise OSError(*outcome[1])
        if outcome[0] == "failed":
            raise TaskFailed(outcome[1])
        return outcome[1]

    def stop(self) -> None:
        """Ends the tasks still running, and waits for every process to be gone."""
        for process, connection in self._running.values():
            process.kill()
            process.join()
            connection.close()
        self._running.clear()
        for process in self._ending:
            process.join()
        self._ending.clear()

    def _reap(self) -> None:
        """Joins the processes that have ended since their result came."""
        ending = []
        for process in self._ending:
            if process.is_alive():  # is_alive also joins one that has ended
                ending.append(process)
        self._ending = ending


def _child(task: Callable[[], Any], connection: Connection, readers: list[Connection]) -> None:
    """A forked process's life: the task, its result sent, then gone without clean-up."""
    for reader in readers:
        reader.close()
    gc.disable()
    outcome: tuple[str, Any]
    try:
        outcome = ("done", task())
    except OSError as err:  # e.g. the work directory is full: the parent stops with it
        outcome = ("oserror", (err.errno, err.strerror, err.filename))
    except BaseException:  # reported by the parent, which stops the run
        outcome = ("failed", traceback.format_exc(limit=-8))
    try:
        connection.send(outcome)
    finally:
        os._exit(0)
