"""Stopping on SIGTERM or SIGINT, whoever sends it: Ctrl-C in a terminal (the whole process
group), systemd or `kill` (the main process alone).

A signal sets STOP and nothing else: the code that was running decides where to stop. A pass looks
at STOP at its checkpoints (before each HTTP request and in every wait between requests) and raises
Stopped there. A dataset's savepoint opens only after its last request, so the dataset in progress
has written nothing when Stopped leaves it; the pass's transaction then commits the datasets written
before, with their fetch_log rows, without the pages kept ready, and the run is closed as failed
(runner.run_or_close). A command's main thread waits on STOP, then stops its parts in order
(scheduler, children, sandbox).

A stop never takes longer than GRACE_SECONDS: a watchdog started by the first signal kills the
registered children and exits when the orderly stop has not finished by then (a request stuck on a
slow network, a database locked by another process). SQLite rolls back a transaction whose process
is gone, so even that exit leaves no dataset half-written: it leaves the pass unwritten, and the next
pass fetches it again.

A stop on a signal, orderly or by the watchdog, exits with EXIT_STOPPED (0): systemd and a
terminal both count it as a clean stop.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Callable

from collector import logs

STOP = threading.Event()
# SIGINT's handler first: whoever sees SIGTERM caught (SigCgt) may send either at once, and a
# SIGINT before its handler is in raises KeyboardInterrupt where it lands.
SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_STOPPED = 0
# Within the 5 s a supervisor waits before it kills (our contract): 1 s left for the children.
GRACE_SECONDS = 3.5

_last_resort: list[Callable[[], None]] = []


class Stopped(BaseException):
    """A pass cut short by a stop. A BaseException, like KeyboardInterrupt, so that the
    `except Exception` that keeps one failing dataset from stopping the others lets it through,
    and a transaction that sees it rolls back."""


def checkpoint() -> None:
    if STOP.is_set():
        raise Stopped()


def sleep(seconds: float) -> None:
    """time.sleep that a stop cuts short (rate-limit pacing and retry waits can last minutes)."""
    if STOP.wait(max(0.0, seconds)):
        raise Stopped()


def wait_forever() -> None:
    """Block the main thread until a stop; wakes up now and then so a signal is handled at once."""
    while not STOP.wait(0.5):
        pass


def on_last_resort(action: Callable[[], None]) -> None:
    """`action` (kill a child) runs when the watchdog gives up on the orderly stop."""
    _last_resort.append(action)


def install(message: str = "stopping") -> None:
    """Handle SIGTERM and SIGINT in this process from now on (call from the main thread)."""
    for signum in SIGNALS:
        signal.signal(signum, lambda signum, _frame: _request_stop(signum, message))


def _request_stop(signum: int, message: str) -> None:
    if STOP.is_set():
        return  # a second Ctrl-C changes nothing: the watchdog already bounds the stop
    STOP.set()
    threading.Thread(target=_watchdog, name="stop-watchdog", daemon=True).start()
    logs.event(logging.INFO, f"{signal.Signals(signum).name}: {message}", event="stop",
               signal=signal.Signals(signum).name)


def _watchdog() -> None:
    time.sleep(GRACE_SECONDS)
    logs.event(logging.WARNING, f"not stopped within {GRACE_SECONDS:g} s: exiting now "
               "(an open transaction is rolled back by SQLite)", event="stop")
    for action in _last_resort:
        try:
            action()
        except Exception:  # noqa: BLE001 - the exit below must happen whatever a child does
            pass
    exit_now(EXIT_STOPPED)


def exit_now(code: int) -> None:
    """Exit without waiting for other threads (os._exit), after flushing what was printed."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
