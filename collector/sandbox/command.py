"""`mp-collector sandbox`: serve the simulator until Ctrl-C or SIGTERM."""

from __future__ import annotations

import re
import signal
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import click

from collector.sandbox.config import SandboxConfig
from collector.sandbox.faults import KINDS, Fault
from collector.sandbox.server import Sandbox

_PLAIN_VALUE = re.compile(r"^[\w.:/@+=-]*$", re.ASCII)


def env_lines(env: dict[str, str]) -> list[str]:
    """KEY=value lines for .env; values with spaces or other specials are double-quoted."""
    return [f"{key}={value}" if _PLAIN_VALUE.match(value) else f'{key}="{value}"'
            for key, value in env.items()]


def _parse_faults(ctx, param, specs: tuple[str, ...]) -> list[Fault]:
    try:
        return [Fault.parse(spec) for spec in specs]
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def statistics_off_at(minutes: float) -> datetime:
    """When statistics goes off for `--wb-statistics-off-in MINUTES` (the sandbox serves real time)."""
    return datetime.now(timezone.utc) + timedelta(minutes=minutes)


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8900, show_default=True, type=int, help="Port; 0 picks a free one.")
@click.option("--seed", default=1, show_default=True, type=int, help="Which generated seller.")
@click.option("--big", is_flag=True, help="A large seller: WB 3000 products / 20000 orders a day, "
                                          "Ozon 1500 SKUs x 25 warehouses / 5000 postings a day.")
@click.option("--wb-accounts", type=click.IntRange(0, 20), help="WB cabinets (default 1).")
@click.option("--ozon-accounts", type=click.IntRange(0, 20), help="Ozon stores (default 2).")
@click.option("--wb-products", type=click.IntRange(1), help="Products per WB cabinet.")
@click.option("--ozon-products", type=click.IntRange(1), help="Active SKUs per Ozon store.")
@click.option("--wb-orders-per-day", type=click.FloatRange(0), help="Average WB orders a day.")
@click.option("--ozon-postings-per-day", type=click.FloatRange(0), help="Average Ozon postings a day.")
@click.option("--history-days", type=click.IntRange(1), help="Days of history before today.")
@click.option("--rate-limit-factor", type=click.FloatRange(0), default=1.0, show_default=True,
              help="Multiplies every rate-limit interval: 0.01 = 100x faster, 0 = no limits.")
@click.option("--fault", "faults", multiple=True, callback=_parse_faults,
              metavar="KIND[:ENDPOINT[:TIMES]]",
              help=f"Inject a fault (repeatable). TIMES defaults to every time. "
                   f"Kinds: {', '.join(sorted(KINDS))}.")
@click.option("--wb-statistics-off-in", "statistics_off_in", type=click.FloatRange(0), metavar="MINUTES",
              help="WB switches statistics off this many minutes from now (0 = already off): "
                   "supplier/orders and supplier/sales answer 404, as supplier/stocks does, and the "
                   "collector moves to the order feed.")
@click.option("--print-env", is_flag=True, help="Print the .env lines for this sandbox and exit.")
def sandbox_command(host: str, port: int, seed: int, big: bool, faults: list[Fault],
                    print_env: bool, rate_limit_factor: float, statistics_off_in: float | None,
                    **knobs) -> None:
    """Serve a simulated WB + Ozon seller API on loopback, for the collector to run against."""
    base = SandboxConfig.big_seller() if big else SandboxConfig()
    overrides = {name: value for name, value in knobs.items() if value is not None}
    if statistics_off_in is not None:
        overrides["wb_statistics_off_at"] = statistics_off_at(statistics_off_in)
    config = replace(base, seed=seed, rate_limit_factor=rate_limit_factor, **overrides)
    sandbox = Sandbox(config)
    if print_env:
        click.echo("\n".join(env_lines(sandbox.env(url=f"http://{host}:{port}"))))
        return
    for fault in faults:
        sandbox.faults.add(fault)
    sandbox.start(host, port)
    click.echo(f"MP sandbox: Wildberries + Ozon seller APIs at {sandbox.url} (seed {seed}, "
               f"{config.wb_accounts} WB cabinet(s), {config.ozon_accounts} Ozon store(s))")
    click.echo("Point the collector at it with these lines in .env:\n")
    click.echo("\n".join(env_lines(sandbox.env())))
    click.echo("\nCtrl-C to stop.")
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        sandbox.wait()
    except KeyboardInterrupt:
        click.echo("stopping")
    finally:
        signal.signal(signal.SIGTERM, previous)
        sandbox.stop()
