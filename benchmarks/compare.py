"""The viewer as another revision had it against the working tree's, on the same database, in
the same run: every canned query both have (with the viewer benchmark's variants) and the
dashboard page with all its charts, each revision through its own Datasette in this process.

    python -m benchmarks.compare --rev 02de239                     # the year database of make bench
    python -m benchmarks.compare --rev HEAD --database path/to/mp.db --repeats 10
    python -m benchmarks.compare --rev 02de239 --time-limit-ms 60000   # time what stops at 3 s

Only metadata.yml (the canned queries and the dashboard) is taken from the revision; the
database, its schema, the plugin and the script are the working tree's, so the SQL of the
revision must still run on today's schema. Requests of the two sides alternate, so a machine
shared with other work slows both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from datetime import timedelta, timezone
from pathlib import Path

from datasette.app import Datasette
from datasette.utils import parse_metadata

from benchmarks import viewer
from benchmarks.run import _ms, now_aligned

ROOT = Path(__file__).resolve().parent.parent


def metadata_at(rev: str) -> dict:
    """metadata.yml as `rev` had it (git show: reads the repository, changes nothing)."""
    text = subprocess.run(["git", "show", f"{rev}:metadata.yml"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    return parse_metadata(text)


def datasette_with(database: Path, metadata: dict, time_limit_ms: int | None = None) -> Datasette:
    options = viewer.serve_options(database)
    options["metadata"] = metadata
    if time_limit_ms:
        options["settings"]["sql_time_limit_ms"] = time_limit_ms
    return Datasette([str(database)], **options)


async def _alternate(sides: list[tuple[Datasette, viewer.Timing]], repeats: int, budget: float) -> None:
    """One request of each side in turn, after a warm-up of each."""
    for ds, timing in sides:
        try:
            body = await viewer._get(ds, timing.path, parsed=True)
            timing.rows = len(body["rows"]) if body else None
        except RuntimeError as error:
            timing.error = str(error)
    live = [(ds, t) for ds, t in sides if not t.error]
    began = time.perf_counter()
    while live and len(live[0][1].seconds) < repeats and (time.perf_counter() - began < budget
                                                          or len(live[0][1].seconds) < 5):
        for ds, timing in live:
            t = time.perf_counter()
            try:
                await viewer._get(ds, timing.path)
            except RuntimeError as error:  # e.g. the time limit, on a try slower than the warm-up
                timing.error = str(error)
                return
            timing.seconds.append(time.perf_counter() - t)


def compare(database: Path, rev: str, repeats: int = 20, budget: float = 20.0,
            time_limit_ms: int | None = None) -> list[tuple[str, viewer.Timing | None, viewer.Timing | None]]:
    """(label, before, after) for every query case of either revision, then the dashboard."""
    yesterday = (now_aligned() - timedelta(days=1)).astimezone(timezone(timedelta(hours=3))).date().isoformat()
    metadata = {"before": metadata_at(rev), "after": viewer.serve_options(database)["metadata"]}
    sides = {name: datasette_with(database, meta, time_limit_ms) for name, meta in metadata.items()}
    alias = viewer.first_alias(database)
    warehouse = viewer.busiest_warehouse(database)
    rare = viewer.rare_values(database)
    cases = {name: dict(viewer.query_cases(meta, yesterday, alias, warehouse, rare)) for name, meta in metadata.items()}
    labels = list(dict.fromkeys([*cases["before"], *cases["after"]]))

    async def run():
        for ds in sides.values():
            await ds.invoke_startup()
        rows = []
        for label in labels:
            timings = {name: viewer.Timing(label, cases[name][label]) for name in sides if label in cases[name]}
            await _alternate([(sides[name], t) for name, t in timings.items()], repeats, budget)
            rows.append((label, timings.get("before"), timings.get("after")))
        boards = {name: await viewer._time_dashboard(sides[name], metadata[name], max(5, repeats // 2), budget)
                  for name in sides}
        rows += [(boards["after"][i].label, boards["before"][i], boards["after"][i]) for i in range(2)]
        return rows

    with viewer.as_served():  # (before it, every repeat after the first was answered from memory)
        return asyncio.run(run())


def _cell(timing: viewer.Timing | None) -> str:
    if timing is None:
        return "—"
    return f"ERROR: {timing.error[:60]}" if timing.error else f"{_ms(timing.median)} (p95 {_ms(timing.p95)})"


def table(rows, rev: str) -> str:
    lines = [f"| query | before ({rev}) | after (working tree) | after / before |", "|---|---|---|---|"]
    for label, before, after in rows:
        ratio = (f"{after.median / before.median:.2f}x" if before and after and before.seconds and after.seconds
                 else "")
        lines.append(f"| {label} | {_cell(before)} | {_cell(after)} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", required=True, help="the git revision whose metadata.yml is 'before'")
    parser.add_argument("--database", type=Path, default=ROOT / "benchmarks" / "out" / "viewer-year" / "mp.db")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per case, at most")
    parser.add_argument("--time-limit-ms", type=int,
                        help="Datasette's sql_time_limit_ms for both sides (default: as served, 3000), "
                             "to time queries that would stop at the limit")
    args = parser.parse_args(argv)
    print(table(compare(args.database, args.rev, args.repeats, args.budget, args.time_limit_ms), args.rev))
    return 0


if __name__ == "__main__":
    sys.exit(main())
