"""`mp-collector demo`: the sandbox seller, the collector on a short interval, and Datasette,
in one command and with no tokens. Real tokens in `.env` are never read here."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import click
from apscheduler.schedulers.background import BackgroundScheduler

from collector.backfill import backfill
from collector.config import load_settings
from collector.scheduler import add_pass_job, one_pass
from collector.storage import Storage

PROJECT_DIR = Path(__file__).resolve().parent.parent
# The demo paces itself 50x faster than the real limits; the sandbox enforces the same factor.
DEMO_RATE_LIMIT_FACTOR = 0.02


def datasette_command(database: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """How the viewer is served; systemd/mp-datasette.service.in runs the same options.

    --template-dir: the dashboard, help and login pages in Russian; --static assets:...: their
    CSS (dark mode) and the dashboard's JS; sql_time_limit_ms: no query, canned or ad-hoc, holds
    a connection for more than 3 s; max_returned_rows: the cap of a canned query (full exports
    stream from views with _stream=on instead). Datasette opens the file read-only.
    """
    return [sys.executable, "-m", "datasette", "serve", str(database),
            "--metadata", str(PROJECT_DIR / "metadata.yml"),
            "--template-dir", str(PROJECT_DIR / "templates"),
            "--static", f"assets:{PROJECT_DIR / 'static'}",
            "--host", host, "--port", str(port),
            "--setting", "sql_time_limit_ms", "3000",
            "--setting", "max_returned_rows", "5000"]


def run_demo(port: int, sandbox_port: int, minutes: float, history_days: int, database: Path) -> None:
    from collector.sandbox import Sandbox, SandboxConfig

    sandbox = Sandbox(SandboxConfig(seed=1, rate_limit_factor=DEMO_RATE_LIMIT_FACTOR))
    sandbox.start(port=sandbox_port)
    click.echo(f"sandbox: marketplace simulator at {sandbox.url}")
    environ = {**sandbox.env(), "DATABASE_PATH": str(database),
               "ALIASES_FILE": str(PROJECT_DIR / "data" / "aliases.example.csv"),
               "RATE_LIMIT_FACTOR": str(DEMO_RATE_LIMIT_FACTOR),
               "TIMEZONE": os.environ.get("TIMEZONE", "Europe/Moscow")}
    settings = load_settings(env_file=None, environ=environ)

    storage = Storage(database)
    storage.migrate()
    if not storage.db.execute("SELECT 1 FROM orders LIMIT 1").fetchone():
        click.echo(f"collector: loading {history_days} days of history...")
        backfill(settings, storage, history_days, lambda *_: None)
    storage.close()
    one_pass(settings, "demo")

    scheduler = BackgroundScheduler(timezone=settings.timezone)
    add_pass_job(scheduler, settings, minutes, "demo", run_now=False)
    scheduler.start()
    viewer = subprocess.Popen(datasette_command(database, port), env={**os.environ, **{"TIMEZONE": environ["TIMEZONE"]}})
    click.echo(f"\nDashboard: http://127.0.0.1:{port}/mp  (collector every {minutes:g} min; Ctrl-C to stop)\n")
    try:
        while viewer.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        viewer.terminate()
        scheduler.shutdown(wait=True)
        sandbox.stop()
        viewer.wait(timeout=10)
