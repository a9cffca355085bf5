"""`mp-collector demo`: the sandbox seller, the collector on a short interval, and Datasette,
in one command and with no tokens. Real tokens in `.env` are never read here."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
from apscheduler.schedulers.background import BackgroundScheduler

from collector import logs, stopping
from collector.config import Settings, load_settings
from collector.pipeline import run_lock
from collector.runner import run_or_close
from collector.scheduler import add_pass_job, one_pass
from collector.storage import Storage
from collector.timeutil import iso
from collector.viewer import PARENT_VARIABLE, PROJECT_DIR, datasette_command

# The demo paces itself 50x faster than the real limits; the sandbox enforces the same factor.
DEMO_RATE_LIMIT_FACTOR = 0.02
# History is made by replaying passes at this cadence on a simulated clock, as if the collector
# had been running all along: that is what dates Ozon buyouts and builds stock history.
REPLAY_STEP = timedelta(hours=4)
REPLAY_STATE = "demo_history"  # collector_state: "started", then "done" once the replay is complete
# Datasette's own shutdown is bounded at 2 s (viewer.SHUTDOWN_SECONDS); then it is killed.
VIEWER_STOP_SECONDS = 2.5


def run_demo(port: int, sandbox_port: int, minutes: float, history_days: int, database: Path,
             statistics_off_in: float | None = None) -> None:
    """Until SIGTERM or SIGINT (Ctrl-C, or `kill` to this process alone), then stop within 5 s
    with exit code 0, Datasette and the pass in progress with it (collector/stopping.py)."""
    from collector.sandbox import Sandbox, SandboxConfig
    from collector.sandbox.command import statistics_off_at

    stopping.install()
    # --wb-statistics-off-in: WB switches statistics off during the demo (the replay is before it)
    config = SandboxConfig(seed=1, rate_limit_factor=DEMO_RATE_LIMIT_FACTOR, wb_statistics_off_at=(
        None if statistics_off_in is None else statistics_off_at(statistics_off_in)))
    sandbox = Sandbox(config).start(port=sandbox_port)
    scheduler = viewer = None
    try:
        click.echo(f"sandbox: marketplace simulator at {sandbox.url} (alerts arrive at {sandbox.url}/alerts)")
        settings = demo_settings(sandbox, database)
        prepare_database(config, settings, history_days)
        one_pass(settings, "demo")
        stopping.checkpoint()
        scheduler = BackgroundScheduler(timezone=settings.timezone)
        add_pass_job(scheduler, settings, minutes, "demo", run_now=False)
        scheduler.start()
        click.echo(f"\nDashboard: http://127.0.0.1:{port}/  (tables and queries: http://127.0.0.1:{port}/mp; "
                   f"collector every {minutes:g} min; Ctrl-C to stop)\n")
        viewer = start_viewer(database, port, settings)
        while viewer.poll() is None and not stopping.STOP.wait(0.5):
            pass
    except stopping.Stopped:
        pass
    finally:
        stop_viewer(viewer)
        if scheduler is not None:
            scheduler.shutdown(wait=True)  # the pass in progress ends at its next checkpoint
        sandbox.stop()
    if not stopping.STOP.is_set():
        raise click.ClickException(f"Datasette stopped by itself (exit code {viewer.returncode}); see above")


def prepare_database(config, settings: Settings, history_days: int) -> None:
    with run_lock(settings.database_path):
        storage = Storage(settings.database_path)
        try:
            storage.migrate()
            replay_history(config, settings, storage, history_days)
        finally:
            storage.close()


def start_viewer(database: Path, port: int, settings: Settings) -> subprocess.Popen:
    """Datasette as a child that stops when this process is gone, even by SIGKILL (viewer.py).
    Started from the main thread: the kernel's parent-death signal follows the thread that forks."""
    viewer = subprocess.Popen(datasette_command(database, port), env={
        **os.environ, "TIMEZONE": str(settings.timezone), PARENT_VARIABLE: str(os.getpid())})
    stopping.on_last_resort(viewer.kill)
    return viewer


def stop_viewer(viewer: subprocess.Popen | None) -> None:
    """SIGTERM, then SIGKILL if Datasette has not exited within VIEWER_STOP_SECONDS: it only
    reads, so there is nothing it could lose."""
    if viewer is None or viewer.poll() is not None:
        return
    viewer.terminate()
    try:
        viewer.wait(timeout=VIEWER_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        viewer.kill()
        viewer.wait()


def demo_settings(sandbox, database: Path, alerts: bool = True) -> Settings:
    """Settings that point at the sandbox only: the real environment's tokens are never read.
    Alerts go to ALERT_URLS when the environment sets it, else to the sandbox's receiver
    (`{sandbox}/alerts` lists them); a replay of history sends none (`alerts=False`)."""
    return load_settings(env_file=None, environ={
        **sandbox.env(), "DATABASE_PATH": str(database),
        "ALIASES_FILE": str(PROJECT_DIR / "data" / "aliases.example.csv"),
        "RATE_LIMIT_FACTOR": str(DEMO_RATE_LIMIT_FACTOR),
        "TIMEZONE": os.environ.get("TIMEZONE", "Europe/Moscow"),
        "ALERT_URLS": (os.environ.get("ALERT_URLS") or sandbox.alerts_url) if alerts else "",
    })


def replay_history(config, settings: Settings, storage: Storage, days: int) -> None:
    """Passes every REPLAY_STEP over the last `days` days, against a twin of the sandbox (same
    seed, so the same seller) whose clock the replay moves. A replay a stop cut short resumes at
    the pass it was in; a finished one is not done again."""
    from collector.sandbox import Sandbox, SandboxClock

    start = replay_start(storage, days)
    if start is None:
        return
    clock = SandboxClock(start)
    twin = Sandbox(config.__class__(**{**config.__dict__, "rate_limit_factor": 0}), clock=clock).start()
    replay = demo_settings(twin, settings.database_path, alerts=False)
    steps = int((datetime.now(timezone.utc) - start) / REPLAY_STEP)
    logger = logs.get_logger()
    level = logger.level
    logger.setLevel("WARNING")
    try:
        with click.progressbar(range(steps), label=f"collector: replaying {days} days of passes") as bar:
            for _ in bar:
                run_or_close(replay, storage, "demo", clock=clock.now)
                clock.advance(REPLAY_STEP)
        with storage.transaction():
            storage.set_state(REPLAY_STATE, "done", iso(clock.now(), settings.timezone))
    finally:
        logger.setLevel(level)
        twin.stop()


def replay_start(storage: Storage, days: int) -> datetime | None:
    """Where the replay starts: `days` ago on a new database; at the last replayed pass when a
    stop cut the replay short; None when it is done (or the database predates the marker)."""
    state = storage.state(REPLAY_STATE)
    last = storage.db.execute("SELECT max(started_at) FROM runs").fetchone()[0]
    if state == "done" or (last and state is None):
        return None
    start = datetime.now(timezone.utc) - timedelta(days=days)
    if state is None:
        with storage.transaction():
            storage.set_state(REPLAY_STATE, "started", iso(start, timezone.utc))
    return max(start, datetime.fromisoformat(last)) if last else start
