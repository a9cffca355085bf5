"""`mp-collector schedule`: passes on an interval in-process, for hosts without systemd.

Never two passes at once (max_instances=1 here, and the run lock against other processes);
passes missed while one ran long are coalesced into one; SIGTERM and Ctrl-C stop cleanly
after the pass in progress.
"""

from __future__ import annotations

import logging
import signal
from datetime import datetime
from typing import Callable

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from collector import logs
from collector.config import Settings
from collector.pipeline import AlreadyRunning, PassResult
from collector.runner import collect_once
from collector.storage import StorageError


def one_pass(settings: Settings, trigger: str) -> PassResult | None:
    """A pass as the scheduler runs it: errors are logged, never raised into the scheduler."""
    try:
        return collect_once(settings, trigger)
    except AlreadyRunning as exc:
        logs.event(logging.WARNING, str(exc), event="pass", status="skipped")
    except StorageError as exc:
        logs.event(logging.ERROR, str(exc), event="pass", status="failed")
    return None


def add_pass_job(scheduler: BaseScheduler, settings: Settings, minutes: float, trigger: str,
                 job: Callable[[Settings, str], object] = one_pass, run_now: bool = True) -> None:
    scheduler.add_job(
        job, IntervalTrigger(minutes=minutes, timezone=settings.timezone), args=[settings, trigger],
        id="collector-pass", name="collector pass",
        **({"next_run_time": datetime.now(settings.timezone)} if run_now else {}),
        max_instances=1, coalesce=True, misfire_grace_time=max(1, int(minutes * 60)),
    )


def run_forever(settings: Settings, minutes: float) -> None:
    scheduler = BlockingScheduler(timezone=settings.timezone)
    add_pass_job(scheduler, settings, minutes, "schedule")

    def stop(signum, _frame):
        logs.event(logging.INFO, f"{signal.Signals(signum).name}: stopping after the pass in progress",
                   event="schedule")
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logs.event(logging.INFO, f"collecting every {minutes:g} minutes; Ctrl-C to stop", event="schedule")
    scheduler.start()
