"""`mp-collector demo`: the sandbox seller, the collector on a short interval, and Datasette,
in one command and with no tokens. Real tokens in `.env` are never read here."""

from __future__ import annotations

import os
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
from apscheduler.schedulers.background import BackgroundScheduler

from collector import logs
from collector.config import Settings, load_settings
from collector.pipeline import run_lock, run_pass
from collector.scheduler import add_pass_job, one_pass
from collector.storage import Storage
from collector.viewer import PROJECT_DIR, datasette_command

# The demo paces itself 50x faster than the real limits; the sandbox enforces the same factor.
DEMO_RATE_LIMIT_FACTOR = 0.02
# History is made by replaying passes at this cadence on a simulated clock, as if the collector
# had been running all along: that is what dates Ozon buyouts and builds stock history.
REPLAY_STEP = timedelta(hours=4)


def run_demo(port: int, sandbox_port: int, minutes: float, history_days: int, database: Path) -> None:
    from collector.sandbox import Sandbox, SandboxConfig

    config = SandboxConfig(seed=1, rate_limit_factor=DEMO_RATE_LIMIT_FACTOR)
    sandbox = Sandbox(config).start(port=sandbox_port)
    click.echo(f"sandbox: marketplace simulator at {sandbox.url}")
    settings = demo_settings(sandbox, database)

    with run_lock(database):
        storage = Storage(database)
        storage.migrate()
        if not storage.db.execute("SELECT 1 FROM runs LIMIT 1").fetchone():
            replay_history(config, settings, storage, history_days)
        storage.close()
    one_pass(settings, "demo")

    scheduler = BackgroundScheduler(timezone=settings.timezone)
    add_pass_job(scheduler, settings, minutes, "demo", run_now=False)
    scheduler.start()
    viewer = None
    click.echo(f"\nDashboard: http://127.0.0.1:{port}/  (tables and queries: http://127.0.0.1:{port}/mp; "
               f"collector every {minutes:g} min; Ctrl-C to stop)\n")
    try:
        viewer = subprocess.Popen(datasette_command(database, port),
                                  env={**os.environ, "TIMEZONE": str(settings.timezone)})
        while viewer.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        if viewer is not None:
            viewer.terminate()
            viewer.wait(timeout=10)
        scheduler.shutdown(wait=True)
        sandbox.stop()


def demo_settings(sandbox, database: Path) -> Settings:
    """Settings that point at the sandbox only: the real environment's tokens are never read."""
    return load_settings(env_file=None, environ={
        **sandbox.env(), "DATABASE_PATH": str(database),
        "ALIASES_FILE": str(PROJECT_DIR / "data" / "aliases.example.csv"),
        "RATE_LIMIT_FACTOR": str(DEMO_RATE_LIMIT_FACTOR),
        "TIMEZONE": os.environ.get("TIMEZONE", "Europe/Moscow"),
    })


def replay_history(config, settings: Settings, storage: Storage, days: int) -> None:
    """Passes every REPLAY_STEP over the last `days` days, against a twin of the sandbox (same
    seed, so the same seller) whose clock the replay moves."""
    from collector.sandbox import Sandbox, SandboxClock

    now = datetime.now(timezone.utc)
    clock = SandboxClock(now - timedelta(days=days))
    twin = Sandbox(config.__class__(**{**config.__dict__, "rate_limit_factor": 0}), clock=clock).start()
    replay = demo_settings(twin, settings.database_path)
    steps = int(timedelta(days=days) / REPLAY_STEP)
    logger = logs.get_logger()
    level = logger.level
    logger.setLevel("WARNING")
    try:
        with click.progressbar(range(steps), label=f"collector: replaying {days} days of passes") as bar:
            for _ in bar:
                run_pass(replay, storage, "demo", clock=clock.now)
                clock.advance(REPLAY_STEP)
    finally:
        logger.setLevel(level)
        twin.stop()
