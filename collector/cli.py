"""`mp-collector`: a thin click CLI over the pipeline, storage and sandbox.

Exit codes: 0 all succeeded; 2 some dataset failed (the others are saved); 1 nothing could run.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
from contextlib import closing, contextmanager, nullcontext
from pathlib import Path

import click

from collector import __version__, logs
from collector.aliases import AliasFileError, read_aliases
from collector.config import ConfigError, Settings, load_settings
from collector.pipeline import DATASETS, AlreadyRunning, run_lock, upgrade
from collector.runner import collect_once
from collector.storage import Storage, StorageError, make_database_folder

EXIT_OK, EXIT_NOTHING_RAN, EXIT_PARTIAL = 0, 1, 2


class Failure(click.ClickException):
    """A message for the person at the terminal, and exit code 1."""
    exit_code = EXIT_NOTHING_RAN

    def show(self, file=None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


@click.group()
@click.version_option(__version__, prog_name="mp-collector")
@click.option("--env-file", type=click.Path(dir_okay=False, path_type=Path), default=".env", show_default=True,
              help="Variables file; the real environment wins over it.")
@click.option("--log-format", type=click.Choice(["auto", "text", "json"]), default="auto", show_default=True,
              help="auto: JSON under systemd, text on a terminal.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              default="INFO", show_default=True)
@click.pass_context
def cli(ctx: click.Context, env_file: Path, log_format: str, log_level: str) -> None:
    """MP Dashboard collector: Wildberries and Ozon FBO stocks, orders and sales into SQLite."""
    ctx.obj = {"env_file": env_file, "log_format": log_format, "log_level": log_level}
    logs.configure(log_format, log_level)


def settings_from(ctx: click.Context, need_accounts: bool = True) -> Settings:
    try:
        settings = load_settings(ctx.obj["env_file"])
    except ConfigError as exc:
        raise Failure(f"configuration: {exc}") from None
    logs.configure(ctx.obj["log_format"], ctx.obj["log_level"], settings.secrets)
    for warning in settings.warnings:
        logs.event(logging.WARNING, warning, event="config")
    if need_accounts and not settings.accounts:
        raise Failure("no marketplace account is configured: set WB_API_TOKEN, or OZON_CLIENT_ID_1 and "
                      "OZON_API_KEY_1 (see .env.example)")
    return settings


@contextmanager
def open_storage(settings: Settings, locked: bool = False):
    """The database, created or upgraded. The upgrade writes (views and triggers at least):
    unless the caller holds the run lock (`locked`), it waits for a pass in progress."""
    try:
        storage = Storage(settings.database_path)
        with nullcontext() if locked else run_lock(settings.database_path, wait=True):
            upgrade(settings, storage)
    except StorageError as exc:
        raise Failure(str(exc)) from None
    try:
        yield storage
    finally:
        storage.close()


@cli.command()
@click.option("--trigger", type=click.Choice(["manual", "timer", "schedule", "demo"]), default="manual",
              envvar="MP_TRIGGER", show_default=True, help="Recorded in the runs table.")
@click.option("--dataset", "datasets", type=click.Choice(DATASETS), multiple=True,
              help="Only these datasets (repeatable); all by default.")
@click.pass_context
def run(ctx: click.Context, trigger: str, datasets: tuple[str, ...]) -> None:
    """One pass over every configured account and dataset."""
    settings = settings_from(ctx)
    try:
        result = collect_once(settings, trigger, datasets or None)
    except (AlreadyRunning, StorageError) as exc:
        raise Failure(str(exc)) from None
    for item in result.datasets:
        if item.error:
            click.echo(item.error, err=True)
    sys.exit(result.exit_code)


@cli.command("init-db")
@click.pass_context
def init_db(ctx: click.Context) -> None:
    """Create or migrate the database from schema.sql."""
    settings = settings_from(ctx, need_accounts=False)
    with open_storage(settings) as storage:
        click.echo(f"{settings.database_path}: schema version {storage.schema_version}")


@cli.group("aliases")
def aliases_group() -> None:
    """SKU aliases (groups shown as one row)."""


@aliases_group.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def aliases_load(ctx: click.Context, file: Path) -> None:
    """Replace the alias table from a CSV with the header marketplace,key,alias."""
    settings = settings_from(ctx, need_accounts=False)
    try:
        rows = read_aliases(file)
    except AliasFileError as exc:
        raise Failure(str(exc)) from None
    with run_lock(settings.database_path, wait=True), open_storage(settings, locked=True) as storage:
        storage.replace_aliases(rows)
        keep_pages_ready(settings, storage)
    click.echo(f"{len(rows)} keys in {len({row[2] for row in rows})} aliases loaded from {file}")


def keep_pages_ready(settings, storage) -> None:
    """Recompute the pages kept ready (restock_now, today_now, buyout_now, warehouse_month_now:
    collector/kept.py) now rather than at the next pass, after a command that rewrote what they
    are made of: the groups, the history, the summaries. Until then «Заканчивается» and the
    alerts would name the old groups."""
    from collector.pipeline import refresh_kept
    from collector.timeutil import utc_now

    refresh_kept(settings, storage, utc_now())


@cli.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Validate the configuration and reach each API once; writes nothing."""
    from collector.checks import check_accounts

    settings = settings_from(ctx)
    problems = 0
    for line, ok in check_accounts(settings):
        click.echo(("ok    " if ok else "FAIL  ") + line)
        problems += not ok
    sys.exit(EXIT_PARTIAL if problems else EXIT_OK)


@cli.command()
@click.option("--every", "minutes", type=click.FloatRange(min=0.01), envvar="COLLECT_INTERVAL_MINUTES",
              default=10, show_default=True,
              help="Minutes between passes, counted from midnight in TIMEZONE (or COLLECT_INTERVAL_MINUTES).")
@click.pass_context
def schedule(ctx: click.Context, minutes: float) -> None:
    """Run passes on an interval in-process (APScheduler), for hosts without systemd."""
    from collector.scheduler import run_forever

    settings = settings_from(ctx)
    with open_storage(settings):
        pass  # fail now, not at the first pass, if the database cannot be written
    run_forever(settings, minutes)


@cli.command()
@click.option("--days", type=click.IntRange(min=1, max=365), required=True,
              help="How many days back (WB keeps 90, Ozon allows up to 365).")
@click.pass_context
def backfill(ctx: click.Context, days: int) -> None:
    """Load order and sales history for the last N days, with a progress bar.

    Resumable: an interrupted backfill continues where it stopped.
    """
    from collector.backfill import backfill as load_history

    settings = settings_from(ctx)
    progress = BackfillProgress(interactive=sys.stderr.isatty())
    try:
        with run_lock(settings.database_path), open_storage(settings, locked=True) as storage:
            outcome = load_history(settings, storage, days, progress)
            keep_pages_ready(settings, storage)
    except (AlreadyRunning, StorageError) as exc:
        raise Failure(str(exc)) from None
    progress.finish()
    for (account, dataset), rows in outcome.items():
        click.echo(f"{account} {dataset}: {rows} rows read" if isinstance(rows, int) else f"FAILED {rows}")
    sys.exit(EXIT_PARTIAL if any(isinstance(rows, str) for rows in outcome.values()) else EXIT_OK)


@cli.command("backup")
@click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def backup_command(ctx: click.Context, destination: Path) -> None:
    """Copy the database safely while the viewer reads and the collector writes."""
    from collector.maintenance import backup

    settings = settings_from(ctx, need_accounts=False)
    with open_storage(settings) as storage:
        size = backup(storage, destination)
    click.echo(f"{settings.database_path} -> {destination} ({size / 1_048_576:.1f} MiB, integrity ok)")


@cli.command()
@click.option("--keep-days", type=click.IntRange(min=1), default=90, show_default=True,
              help="Keep this many days of run logs (runs, fetch_log) and sent alerts.")
@click.pass_context
def maintain(ctx: click.Context, keep_days: int) -> None:
    """Prune old run logs and sent alerts, and refresh the planner's statistics (a pass does it daily too)."""
    from collector.maintenance import optimize, prune
    from collector.timeutil import utc_now

    settings = settings_from(ctx, need_accounts=False)
    try:
        with run_lock(settings.database_path), open_storage(settings, locked=True) as storage:
            deleted = prune(storage, utc_now(), keep_days)
            optimize(storage)
    except (AlreadyRunning, StorageError) as exc:
        raise Failure(str(exc)) from None
    click.echo(", ".join(f"{table}: {n} rows deleted" for table, n in deleted.items()))


@cli.command()
@click.option("--check", is_flag=True,
              help="Only compare the kept summaries (and the stock at each past day's end) with a "
                   "recomputation; exit 1 if they differ.")
@click.pass_context
def rebuild(ctx: click.Context, check: bool) -> None:
    """Recompute the summaries the viewer reads (daily_figures, sku_days, sku_stock, sku_names,
    order outcomes, first stock days) from the raw orders, sales and stock rows, in one transaction."""
    import time

    settings = settings_from(ctx, need_accounts=False)
    started = time.monotonic()
    if check:
        check_summaries(settings)
        return
    try:
        with run_lock(settings.database_path), open_storage(settings, locked=True) as storage:
            counts = storage.rebuild_summaries()
            keep_pages_ready(settings, storage)
    except (AlreadyRunning, StorageError) as exc:
        raise Failure(str(exc)) from None
    click.echo(f"rebuilt in {time.monotonic() - started:.1f} s from {counts['orders']} order lines, "
               f"{counts['sales']} sales rows and {counts['stock']} stock changes: "
               f"{counts['daily_figures']} daily_figures rows")


def check_summaries(settings) -> None:
    """Say, per summary, how many rows differ from a recomputation from the raw rows, each as
    soon as it is known (at a year of history the whole check takes minutes)."""
    from collector.kept import stock_days_drift
    from collector.storage import summary_drifts

    differing = []
    click.echo("comparing the summaries with a recomputation from the raw rows "
               "(minutes at a year of history) ...")
    try:
        with open_storage(settings) as storage:
            for table, rows in summary_drifts(storage.db):
                report_drift(table, rows, "", differing)
            stock_days = stock_days_drift(storage.db)
    except StorageError as exc:
        raise Failure(str(exc)) from None
    if stock_days is None:
        click.echo("--    marketplace_alias_warehouse_stock_days: not kept now (the next pass computes it)")
    else:
        through, rows = stock_days
        report_drift("marketplace_alias_warehouse_stock_days", rows, f" (the days up to {through})", differing)
    if differing:
        raise Failure("the summaries differ from the raw rows: run `mp-collector rebuild`")


def report_drift(table: str, rows: int, scope: str, differing: list[str]) -> None:
    click.echo(f"{'ok  ' if rows == 0 else 'DIFF'}  {table}: {rows} rows differ from a recomputation{scope}")
    if rows:
        differing.append(table)


@cli.group("alerts")
def alerts_group() -> None:
    """Messages to the seller through Apprise (ALERT_URLS)."""


@alerts_group.command("test")
@click.pass_context
def alerts_test(ctx: click.Context) -> None:
    """Send one test message to every ALERT_URLS entry and say which worked."""
    from collector.alerts import test_channels

    settings = settings_from(ctx, need_accounts=False)
    if not settings.alert_urls:
        raise Failure("ALERT_URLS is not set: no alerts are sent (see README, «Уведомления»)")
    outcome = test_channels(settings)
    for label, ok, error in outcome:  # a label is scheme and host only: the URL holds tokens
        click.echo(f"ok    {label}" if ok else f"FAIL  {label}: {error}")
    sys.exit(EXIT_OK if all(ok for _, ok, _ in outcome) else EXIT_PARTIAL)


@alerts_group.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many events.")
@click.pass_context
def alerts_list(ctx: click.Context, limit: int) -> None:
    """Show recent events and how their delivery went, per channel."""
    from collector.alerts import recent_events

    settings = settings_from(ctx, need_accounts=False)
    with open_storage(settings) as storage:
        events = recent_events(storage, limit)
    if not events:
        click.echo("no events yet" + ("" if settings.alert_urls else " (ALERT_URLS is not set)"))
    for event in events:
        click.echo(f"{event['created_at']}  {event['status']:<7}  {event['kind']:<12}  {event['title']}")
        for d in event["deliveries"]:
            retry = f", next try {d['next_try_at']}" if d["status"] == "failed" and d["next_try_at"] else ""
            error = f": {d['error']}" if d["error"] and d["status"] != "sent" else ""
            click.echo(f"    {d['channel']}: {d['status']} after {d['attempts']} attempt(s){retry}{error}")


class BackfillProgress:
    """A bar per account x dataset on a terminal; elsewhere (systemd, a pipe) a log line at
    every tenth, since a bar would not be drawn there."""

    def __init__(self, interactive: bool):
        self.interactive = interactive
        self.bar, self.current, self.logged = None, None, -1

    def __call__(self, account: str, dataset: str, fraction: float) -> None:
        if (account, dataset) != self.current:
            self.finish()
            self.current, self.logged = (account, dataset), -1
            if self.interactive:
                self.bar = click.progressbar(length=1000, label=f"{account} {dataset}", file=sys.stderr)
        if self.bar is not None:
            self.bar.update(int(fraction * 1000) - self.bar.pos)
        elif int(fraction * 10) > self.logged:
            self.logged = int(fraction * 10)
            logs.event(logging.INFO, f"{account} {dataset}: backfill {self.logged * 10}%", event="backfill_progress",
                       account=account, dataset=dataset, percent=self.logged * 10)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.render_finish()
            self.bar = None


@cli.command()
@click.option("--port", type=int, default=8001, show_default=True, help="Datasette's port.")
@click.option("--sandbox-port", type=int, default=0, help="The simulator's port (0: any free one).")
@click.option("--every", "minutes", type=float, default=1, show_default=True, help="Minutes between passes.")
@click.option("--history-days", type=int, default=30, show_default=True, help="History loaded at the start.")
@click.option("--database", type=click.Path(dir_okay=False, path_type=Path), default=Path("data/demo/mp.db"),
              show_default=True)
@click.option("--wb-statistics-off-in", "statistics_off_in", type=click.FloatRange(0), metavar="MINUTES",
              help="The simulated WB switches supplier/orders and supplier/sales off after this many minutes "
                   "(404): watch the collector move to the order feed on the freshness page.")
def demo(port: int, sandbox_port: int, minutes: float, history_days: int, database: Path,
         statistics_off_in: float | None) -> None:
    """Simulator + collector + Datasette: a working dashboard with no tokens."""
    from collector.demo import run_demo

    run_demo(port=port, sandbox_port=sandbox_port, minutes=minutes, history_days=history_days, database=database,
             statistics_off_in=statistics_off_in)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Listen address; keep loopback behind nginx.")
@click.option("--port", type=int, default=8001, show_default=True)
@click.option("--behind-proxy", is_flag=True, help="nginx terminates TLS: Datasette builds https:// URLs.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, behind_proxy: bool) -> None:
    """Serve the database read-only with Datasette: dashboard, queries, exports.

    Reads only the viewer's variables (DATABASE_PATH, TIMEZONE, DATASETTE_PASSWORD_HASH,
    DATASETTE_SECRET) from the environment and --env-file, so a mistake in the marketplace
    settings never keeps the viewer down, and Datasette is handed no marketplace token.
    """
    import os

    from collector.config import check_viewer_environment, read_environment
    from collector.viewer import VIEWER_VARIABLES, datasette_command

    env = read_environment(ctx.obj["env_file"])
    try:
        check_viewer_environment(env)
    except ConfigError as exc:
        raise Failure(f"configuration: {exc}") from None
    database = Path(env.get("DATABASE_PATH", "data/mp.db"))
    check_viewer_database(database)
    os.environ.update({name: env[name] for name in VIEWER_VARIABLES if name in env})
    command = datasette_command(database, port, host, behind_proxy, create=True)
    os.execv(command[0], command)  # systemd supervises Datasette itself, not a wrapper


def check_viewer_database(database: Path) -> None:
    """What Datasette would stop on with a traceback, said as the collector says it: the folder is
    made as the collector makes it (the viewer may start first); a folder or a file that is not a
    database in its place is refused. A missing file is fine: Datasette creates it empty."""
    try:
        make_database_folder(database)
    except StorageError as exc:
        raise Failure(str(exc)) from None
    if database.is_dir():
        raise Failure(f"cannot open the database {database}: it is a folder")
    if database.exists():
        try:
            with closing(sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)) as conn:
                conn.execute("PRAGMA schema_version")
        except sqlite3.DatabaseError as exc:
            raise Failure(f"cannot open the database {database}: {exc}") from None


def _attach_sandbox() -> None:
    from collector.sandbox.command import sandbox_command

    cli.add_command(sandbox_command, "sandbox")


_attach_sandbox()
