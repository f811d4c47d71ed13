"""Stopping a run gracefully: SIGINT (Ctrl-C) and SIGTERM (a batch system's time limit).

A :class:`StopRequest` is a flag the signal handlers set and the trainer reads after every
step. The run then ends at that step boundary: the trainer writes a checkpoint (through its
callbacks), and raises :class:`Stopped`; ``solve`` writes the summary and figures so far and
re-raises it, and the command line prints one line saying how to resume. A second signal
while the first is pending, or a signal before training starts, stops at once
(:class:`Terminated`; the previous checkpoint stays valid because every file is written
atomically). A signal after training skips the classical baseline, so the run folder is
finished quickly.

:class:`Stopped` derives from ``KeyboardInterrupt`` so that code which already handles
Ctrl-C (the Python API, ``bench``) treats both alike. Nothing here is global: the command
line creates one request per command and passes it down.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mscalepde.errors import Terminated

SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 128 + int(signal.SIGTERM)}  # the shell convention


class StopRequest:
    """Set once a stop was asked for; ``reason`` names the signal (or the caller).

    ``deferred`` is True while a stop can wait for a step boundary: the trainer sets it when
    training starts (``solve`` clears it when a new run starts). Before that — reading the
    problem, the classical reference — the handler stops at once."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.deferred = False

    def set(self, reason: str) -> None:
        self.reason = reason

    def __bool__(self) -> bool:
        return self.reason is not None


@contextmanager
def graceful_stop(request: StopRequest) -> Iterator[StopRequest]:
    """Within the block, SIGINT and SIGTERM set ``request``; a second one raises
    :class:`Terminated`. Off the main thread (where Python cannot install handlers) the
    block runs with the handlers unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum: int, frame: object) -> None:
        name = SIGNAL_NAMES.get(signal.Signals(signum), str(signum))
        if request or not request.deferred:
            request.set(name)
            raise Terminated(name)
        request.set(name)

    previous: dict[int, Callable[..., Any] | int | None] = {}
    for sig in SIGNAL_NAMES:
        previous[sig] = signal.signal(sig, handler)
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
