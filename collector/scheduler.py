"""`mp-collector schedule`: passes on an interval in-process, for hosts without systemd.

Never two passes at once (max_instances=1 here, and the run lock against other processes);
passes missed while one ran long are coalesced into one. SIGTERM and SIGINT stop it within 5 s,
exit code 0: the pass in progress stops at its next request, with nothing half-written (see
collector/stopping.py).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.interval import IntervalTrigger

from collector import logs, stopping
from collector.config import Settings
from collector.pipeline import AlreadyRunning, PassResult
from collector.runner import collect_once
from collector.storage import StorageError


def one_pass(settings: Settings, trigger: str) -> PassResult | None:
    """A pass as the scheduler runs it: errors are logged, never raised into the scheduler; a
    stop ends it quietly (collect_once has closed its run)."""
    if stopping.STOP.is_set():
        return None  # fired in the moment between the signal and the scheduler's shutdown
    try:
        return collect_once(settings, trigger)
    except AlreadyRunning as exc:
        logs.event(logging.WARNING, str(exc), event="pass", status="skipped")
    except StorageError as exc:
        logs.event(logging.ERROR, str(exc), event="pass", status="failed")
    except stopping.Stopped:
        pass
    return None


def add_pass_job(scheduler: BaseScheduler, settings: Settings, minutes: float, trigger: str,
                 job: Callable[[Settings, str], object] = one_pass, run_now: bool = True) -> None:
    """Passes every `minutes`, counted from midnight in TIMEZONE rather than from the start, as
    the systemd timer's OnCalendar=*:0/10 is: with an interval that divides a day one pass falls
    at 00:00, and keeps the pages of the new day ready (until a pass does, every page computes)."""
    midnight = datetime.now(settings.timezone).replace(hour=0, minute=0, second=0, microsecond=0)
    every = IntervalTrigger(minutes=minutes, start_date=midnight, timezone=settings.timezone)
    scheduler.add_job(
        job, every, args=[settings, trigger],
        id="collector-pass", name="collector pass",
        **({"next_run_time": datetime.now(settings.timezone)} if run_now else {}),
        max_instances=1, coalesce=True, misfire_grace_time=max(1, int(minutes * 60)),
    )


def run_forever(settings: Settings, minutes: float) -> None:
    """Passes until SIGTERM or SIGINT. The scheduler runs them in its own thread, so that the
    main thread is free to take the signal and wait for the pass to stop."""
    stopping.install("stopping; a pass in progress stops at its next request")
    scheduler = BackgroundScheduler(timezone=settings.timezone)
    add_pass_job(scheduler, settings, minutes, "schedule")
    logs.event(logging.INFO, f"collecting every {minutes:g} minutes; Ctrl-C to stop", event="schedule")
    scheduler.start()
    try:
        stopping.wait_forever()
    finally:
        scheduler.shutdown(wait=True)  # the pass in progress ends at its next checkpoint
    logs.event(logging.INFO, "stopped", event="schedule")
