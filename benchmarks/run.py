"""Runs the benchmarks and builds the table: each figure with what it is compared to, and
whether the issue's target is met."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from benchmarks import export, growth, history, ingest, load, passes, undated, viewer
from benchmarks.reference import describe, reference_config
from collector.config import load_settings
from collector.pipeline import refresh_kept
from collector.storage import Storage

SECTIONS = ("ingest", "pass", "day", "growth", "viewer", "undated", "load", "export")
PERIOD_SECONDS = 600  # the collector's timer
MOSCOW = timezone(timedelta(hours=3))  # the reference seller's TIMEZONE (no daylight saving)


@dataclass
class Options:
    scale: float = 1.0
    year_days: int = 365
    # A history as long as the viewer's longest window (history for 90 days): from it to a year,
    # a page's cost shows whether it grows with the history or only with the days it reads.
    window_days: int = 90
    growth_days: int = 30
    ingest_repeats: int = 5
    wb_page_rows: int = ingest.WB_PAGE_ROWS
    ozon_postings: int = ingest.OZON_POSTINGS
    latencies: tuple[float, ...] = (0.0, 150.0)
    day_hours: int = 24  # the hours of a day whose steady pass is measured
    viewer_repeats: int = 30
    viewer_budget: float = 20.0  # seconds per query and database, at most
    viewer_cold_repeats: int = 5  # requests with the year's file evicted from the page cache, per query
    load_clients: int = 8
    load_requests: int = 3000
    load_seconds: float = 20.0
    export_rows: int | None = None  # the year's export is streamed whole; a number: only that many rows
    export_view_seconds: float = 30.0  # how long Datasette's own ?_stream=on of a view is read
    export_check_days: int = 2  # days whose exported rows are compared with the view's
    reuse: bool = False
    baseline_rev: str | None = None  # ingest also with the triggers of this revision's schema.sql
    out: Path = Path("benchmarks/out")

    @classmethod
    def quick(cls) -> "Options":
        return cls(scale=0.05, year_days=30, window_days=10, growth_days=3, ingest_repeats=2, wb_page_rows=4000,
                   ozon_postings=500, viewer_repeats=5, viewer_budget=2.0, viewer_cold_repeats=2, load_clients=4,
                   load_requests=200, load_seconds=3.0, export_view_seconds=5.0, export_check_days=1)

    def config(self, history_days: int = 100):
        return reference_config(self.scale, history_days=history_days, wb_retention_days=history_days)


@dataclass
class Row:
    section: str
    measure: str
    value: str
    compared: str = ""
    target: str = ""
    met: bool | None = None
    command: str = ""
    unmet: str = ""  # which part of the target a row misses, said after its NO


@dataclass
class Report:
    options: Options
    machine: dict
    rows: list[Row] = field(default_factory=list)
    data: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(row.met is not False for row in self.rows)

    def add(self, *args, **kwargs) -> None:
        self.rows.append(Row(*args, **kwargs))

    def table(self) -> list[list[str]]:
        header = ["", "measure", "figure", "compared with", "target", "met"]
        body = [[r.section, r.measure, r.value, r.compared, r.target,
                 "" if r.met is None else ("yes" if r.met else "NO" + (f": {r.unmet}" if r.unmet else ""))]
                for r in self.rows]
        return [header, *body]

    def text(self) -> str:
        table = self.table()
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        lines = [f"MP Dashboard benchmarks: {describe(self.options.config())}",
                 f"machine: {self.machine['description']}", ""]
        for n, row in enumerate(table):
            lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
            if n == 0:
                lines.append("  ".join("-" * width for width in widths))
        return "\n".join(lines)

    def markdown(self) -> str:
        table = self.table()
        lines = ["| " + " | ".join(table[0]) + " |", "|" + "|".join("---" for _ in table[0]) + "|"]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table[1:]]
        return "\n".join(lines)


def machine() -> dict:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(next(line for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal")).split()[1])
        memory = f"{kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    import datasette

    info = {"cpu": cpu, "cores": os.cpu_count(), "memory": memory, "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "datasette": datasette.__version__,
            "os": f"{platform.system()} {platform.release()}"}
    info["description"] = (f"{cpu}, {info['cores']} cores, {memory}; {info['os']}; Python {info['python']}, "
                           f"SQLite {info['sqlite']}, Datasette {info['datasette']}")
    return info


def _ms(seconds: float) -> str:
    return "—" if seconds != seconds else f"{seconds * 1000:,.0f} ms" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def _us_per_row(seconds: float, rows: int) -> str:
    return f"{seconds / rows * 1e6:.1f} us"


def _mb(size: float) -> str:
    return (f"{size / 1e6:,.0f} MB" if size >= 1e7 else f"{size / 1e6:,.2f} MB") if size < 1e9 else f"{size / 1e9:,.1f} GB"


def now_aligned() -> datetime:
    now = datetime.now(timezone.utc)
    return now.replace(minute=now.minute - now.minute % 10, second=0, microsecond=0)


def run(options: Options, sections, log=print) -> Report:
    report = Report(options, machine())
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for section in SECTIONS:
        if section not in sections:
            continue
        began = time.perf_counter()
        log(f"[{section}] running ...")
        globals()[f"_{section}"](options, out, report, log)
        log(f"[{section}] done in {time.perf_counter() - began:.0f} s")
        report.data.setdefault("section_seconds", {})[section] = time.perf_counter() - began
        report.data["seconds"] = time.perf_counter() - started
        _save(report, out)  # after every section: a run cut short keeps what it measured
    return report


def _save(report: Report, out: Path) -> None:
    report.data["machine"] = report.machine
    (out / "results.json").write_text(json.dumps(report.data, indent=2, ensure_ascii=False, default=str))
    (out / "results.md").write_text(f"{describe(report.options.config())}\n\n{report.machine['description']}\n\n"
                                    f"{report.markdown()}\n")


# --- sections ------------------------------------------------------------------------------

def _ingest(options: Options, out: Path, report: Report, log) -> None:
    baseline = ingest.triggers_at(options.baseline_rev) if options.baseline_rev else None
    results = ingest.measure(options.config(), passes.PASS_AT, out / "ingest", options.ingest_repeats,
                             options.wb_page_rows, options.ozon_postings, baseline)
    cmd = "python -m benchmarks --only ingest" + (f" --baseline-rev {options.baseline_rev}" if baseline else "")
    for r in results:
        report.add("1 ingest", f"{r.name}: normalise + write", f"{r.collector_rate:,.0f} rows/s",
                   f"plain executemany {r.plain_rate:,.0f} rows/s ({r.ratio:.2f}x)", ">= 0.5x plain",
                   r.ratio >= 0.5, cmd)
        report.add("1 ingest", f"{r.name}: storage code alone", f"{r.page_rows / (r.collector_seconds - r.normalise_seconds):,.0f} rows/s",
                   f"{r.write_ratio:.2f}x plain", "", None, cmd)
        report.add("1 ingest", f"{r.name}: without the schema's triggers",
                   f"{r.page_rows / r.bare_collector_seconds:,.0f} rows/s",
                   f"plain executemany {r.page_rows / r.bare_plain_seconds:,.0f} rows/s ({r.bare_ratio:.2f}x)",
                   "", None, cmd)
        if baseline:
            report.add("1 ingest", f"{r.name}: with the triggers of {options.baseline_rev}",
                       f"{r.page_rows / r.baseline_collector_seconds:,.0f} rows/s",
                       f"plain executemany {r.page_rows / r.baseline_plain_seconds:,.0f} rows/s "
                       f"({r.baseline_ratio:.2f}x)", "", None, cmd)
        report.add("1 ingest", f"{r.name}: the triggers' cost on plain executemany",
                   f"{_us_per_row(r.plain_seconds - r.bare_plain_seconds, r.page_rows)} a row",
                   f"{options.baseline_rev}'s triggers: "
                   f"{_us_per_row(r.baseline_plain_seconds - r.bare_plain_seconds, r.page_rows)} a row" if baseline else "",
                   "", None, cmd)
    report.data["ingest"] = [{**vars(r), "collector_rate": r.collector_rate, "plain_rate": r.plain_rate,
                              "ratio": r.ratio, "write_ratio": r.write_ratio, "bare_ratio": r.bare_ratio,
                              "baseline_ratio": r.baseline_ratio if baseline else None,
                              "baseline_rev": options.baseline_rev} for r in results]


# A pass that finds nothing changed writes its own log and little else (issue #12, target 5: no
# unchanged stock key or order line rewritten): a few of its pages, their WAL frames and checkpoint.
UNCHANGED_PASS_BYTES = 1e6


def _pass(options: Options, out: Path, report: Report, log) -> None:
    config = options.config(history_days=passes.SEEDED_DAYS + 4)
    warm = passes.prepare(config, out / "pass")
    measured = [passes.measure(config, warm, out / "pass", latency, again=n == 0)
                for n, latency in enumerate(options.latencies)]
    cmd = "python -m benchmarks --only pass"
    first = measured[0]
    for d in first.datasets:
        wasted = d.requests - d.fewest
        report.add("2 pass", f"{d.account} {d.dataset}: requests", f"{d.requests}",
                   f"fewest {d.fewest} ({d.rows:,} rows); 429s {d.refused}", "no wasted request",
                   wasted <= 0 and d.refused == 0, cmd)
    for m in measured:
        report.add("2 pass", f"wall time, sandbox latency {m.latency_ms:g} ms", f"{m.seconds:.1f} s",
                   f"{sum(d.requests for d in m.datasets)} requests, status {m.status}",
                   f"well inside {PERIOD_SECONDS // 60} min", m.status == "ok" and m.seconds < PERIOD_SECONDS / 4, cmd)
    for m in measured:
        k = m.kept
        report.add("2 pass", f"pages not kept ready during the pass, sandbox latency {m.latency_ms:g} ms",
                   f"{k.unkept_seconds:.1f} s of {m.seconds:.1f} s",
                   f"{k.unkept_looks} of {k.looks} looks by a reader every {k.POLL * 1000:g} ms found "
                   f"restock_now or today_now not vouched for (kept before the pass: {'yes' if k.kept_at_start else 'no'})",
                   "0 s: the viewer reads the previous pass whole until this one lands",
                   k.kept_at_start and k.unkept_looks == 0, cmd)
    # Bytes written: the busiest pass of the day (23:50, every posting of the day re-read); a day
    # of 144 passes writes at most 144 times that.
    report.add("2 pass", "bytes written by the busiest pass (WAL + checkpoint)", _mb(first.written_bytes),
               f"a day of {24 * 3600 // PERIOD_SECONDS} passes: at most {_mb(first.written_bytes * 24 * 3600 // PERIOD_SECONDS)}",
               "in proportion to what changed", None, cmd)
    report.add("2 pass", "bytes written by the same pass again, nothing changed", _mb(first.written_again),
               "the pass's own log (runs, fetch_log); no row it read again is rewritten",
               f"<= {_mb(UNCHANGED_PASS_BYTES)}", first.written_again <= UNCHANGED_PASS_BYTES, cmd)
    report.data["pass"] = [{"latency_ms": m.latency_ms, "seconds": m.seconds, "status": m.status,
                            "written_bytes": m.written_bytes, "written_again": m.written_again,
                            "unkept_seconds": m.kept.unkept_seconds, "looks": m.kept.looks,
                            "unkept_looks": m.kept.unkept_looks, "kept_at_start": m.kept.kept_at_start,
                            "datasets": [vars(d) for d in m.datasets]} for m in measured]


def _day(options: Options, out: Path, report: Report, log) -> None:
    """A day of passes: the bytes of a steady pass at each hour, and the day's sum."""
    config = options.config(history_days=passes.SEEDED_DAYS + 4)
    day = passes.measure_day(config, out / "day", hours=options.day_hours)
    cmd = "python -m benchmarks --only day"
    written = sorted(day.written.values())
    busiest = max(day.written, key=day.written.get)
    report.add("2 pass", "bytes written by a steady pass, over a day", f"median {_mb(written[len(written) // 2])}",
               f"least {_mb(written[0])}, most {_mb(written[-1])} (at {busiest.astimezone(MOSCOW):%H:%M} Moscow)",
               "in proportion to what changed", None, cmd)
    report.add("2 pass", f"bytes written by a day of {24 * 3600 // PERIOD_SECONDS} passes", _mb(day.per_day),
               f"{len(written)} hours sampled, each hour's {passes.PASSES_AN_HOUR} passes as its measured one",
               "in proportion to what changed", None, cmd)
    report.data["day"] = {"written_bytes": {when.isoformat(): size for when, size in day.written.items()},
                          "per_day": day.per_day}


def _growth(options: Options, out: Path, report: Report, log) -> None:
    config = options.config(history_days=options.growth_days + 12)
    result = growth.measure(config, out / "growth", passes.PASS_AT, options.growth_days)
    cmd = "python -m benchmarks --only growth"
    report.add("3 growth", f"database after {result.days} days ({result.passes:,} passes)", _mb(result.file_bytes),
               f"with full stock snapshots: {_mb(result.full_file_bytes)}", ">= 20x smaller",
               result.ratio >= 20, cmd)
    report.add("3 growth", "  of which stock history", f"{_mb(result.stock_bytes)} ({result.stock_rows:,} rows)",
               f"full snapshots: {_mb(result.full_stock_bytes)} ({result.full_snapshot_rows:,} rows), "
               f"{result.stock_ratio:,.0f}x", "", None, cmd)
    report.add("3 growth", "estimate for a year", _mb(result.year_estimate()),
               f"{result.ratio:.0f}x smaller than full snapshots", f"<= {_mb(YEAR_BYTES)} (issue #12)",
               result.year_estimate() <= YEAR_BYTES, cmd,
               unmet="the raw rows as the contract stores them (docs/PERFORMANCE.md, target 4)")
    _growth_by_table(result, report, cmd)
    report.data["growth"] = {**vars(result), "ratio": result.ratio, "stock_ratio": result.stock_ratio,
                             "full_file_bytes": result.full_file_bytes, "year_estimate": result.year_estimate(),
                             "table_estimates": {t: result.table_estimate(t) for t in result.tables}}


GROWTH_TABLE_SHARE = 0.01  # tables under this share of the year's estimate are listed together


def _growth_by_table(result: growth.GrowthResult, report: Report, cmd: str) -> None:
    """What takes the space, table by table (each with its indexes), largest first."""
    year = result.year_estimate()
    estimates = sorted(((result.table_estimate(t), t) for t in result.tables), reverse=True)
    listed = [(size, t) for size, t in estimates if size >= GROWTH_TABLE_SHARE * year]
    rest = [(size, t) for size, t in estimates if size < GROWTH_TABLE_SHARE * year]
    for size, table in listed:
        kind = {"steady": "steady", "pruned": f"pruned after {result.keep_days} days", "monthly": "grows with the months",
                "stock": "each key's first row, then grows with the days",
                "daily": "grows with the days"}[result.table_kind(table)]
        report.add("3 growth", f"  a year: {table} with its indexes", _mb(size),
                   f"{size / year:.0%}; {_mb(result.tables[table])} after {result.days} days ({kind})", "", None, cmd)
    if rest:
        report.add("3 growth", f"  a year: the other {len(rest)} tables", _mb(sum(size for size, _ in rest)),
                   f"{sum(size for size, _ in rest) / year:.0%}", "", None, cmd)


def _viewer_database(options: Options, out: Path, name: str, days: float, log,
                     any_day: bool = False) -> tuple[Path, datetime]:
    """The database of `days` of history as the collector's last pass leaves it now, and that
    moment in Moscow: the year takes an hour to write, and pages kept on the day it started are
    not read after midnight (nor those of a database written on an earlier day, --reuse). Kept
    if it is of this seller and written today with --reuse, or of any day with `any_day` (the
    sections after the viewer's take the databases it wrote)."""
    path = out / f"viewer-{name}" / "mp.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    end = now_aligned()
    stamp = path.with_suffix(".json")
    wanted = {"scale": options.scale, "days": days, "day": end.astimezone(MOSCOW).date().isoformat()}
    written = json.loads(stamp.read_text()) if path.exists() and stamp.exists() else {}
    same_seller = all(written.get(key) == wanted[key] for key in ("scale", "days"))
    if same_seller and (any_day or (options.reuse and written.get("day") == wanted["day"])):
        log(f"  reusing {path}")
    else:
        log(f"  generating {days:g} days of history into {path} ...")
        made = history.generate(path, options.config(history_days=int(days) + 12), end - timedelta(days=days), end,
                                bulk=True)
        log(f"  {made.rows['orders']:,} order lines, {made.rows['sales']:,} sales, {made.rows['stock']:,} stock rows "
            f"in {made.seconds:.0f} s")
        stamp.write_text(json.dumps(wanted))
    return path, _as_the_collector_leaves_it(path, log)


def _as_the_collector_leaves_it(path: Path, log) -> datetime:
    """Views and triggers of today's schema.sql, and the pages the collector keeps ready after a
    pass now (they and what vouches for them may be of an older schema, or of a day before
    today's, which no page reads); now, in Moscow."""
    now = datetime.now(timezone.utc).astimezone(MOSCOW)
    started = time.perf_counter()
    storage = Storage(path)
    try:
        storage.migrate()
        refresh_kept(load_settings(None, {"DATABASE_PATH": str(path)}), storage, now)
    finally:
        storage.close()
    log(f"  {path}: its schema and kept pages brought up to {now:%Y-%m-%d %H:%M} Moscow, as a pass then would, "
        f"in {time.perf_counter() - started:.1f} s")
    return now


# Issue #12's bar for every page of the viewer at a year of history, and for the file's growth.
WARM_MS, COLD_MS, GROWTH = 100, 1000, 1.5
YEAR_BYTES = 3 * 10**9


BEFORE_THEIR_HISTORY = "{half_a_year_ago}"  # a date in a label that the 1-day database does not have


def _growth_unmet(year: viewer.Timing, window: viewer.Timing, window_days: int) -> str:
    """Why a page at a year costs more than at one day: more of the history it reads (the
    database of `window_days` has all of it too, and costs the same), or more per day."""
    if window.seconds and year.median <= GROWTH * window.median:
        return f"over {GROWTH}x one day, within it against {window_days} days (more days read, not more per day)"
    return f"over {GROWTH}x one day"


def _warm_unmet(year: viewer.Timing, ratio: float | None) -> str:
    """What a page over the bar at a year is made of, as far as the run shows it: the rows of its
    answer, and whether it costs about as much at one day (the page's size, not the history)."""
    size = f"{year.rows:,} rows sent" if year.rows else ""
    if ratio is not None and ratio <= GROWTH:
        return f" ({size + ', ' if size else ''}{ratio:.1f}x one day: the page's size, not the history)"
    return f" ({size})" if size else ""


def _units_ordered(database: Path, *days: str) -> list[int]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        return [conn.execute("SELECT coalesce(sum(ordered), 0) FROM account_days WHERE day = ?", [day]).fetchone()[0]
                for day in days]


def _viewer(options: Options, out: Path, report: Report, log) -> None:
    cmd = "python -m benchmarks --only viewer"
    timings = {}
    for name, days in (("day", 1), ("window", options.window_days), ("year", options.year_days)):
        database, moscow_now = _viewer_database(options, out, name, days, log)
        yesterday = (moscow_now - timedelta(days=1)).date().isoformat()
        cold = options.viewer_cold_repeats if name == "year" else 0
        timings[name] = {t.label: t for t in viewer.time_viewer(database, yesterday, options.viewer_repeats,
                                                                options.viewer_budget, cold)}
        report.data.setdefault("viewer_databases", {})[name] = {
            "days": days, "bytes": database.stat().st_size}
    year_label = f"{options.year_days} days" if options.year_days != 365 else "a year"
    # The pages of "today" read the Moscow day the run falls on: just after midnight, or on
    # databases written earlier (--reuse), that day is nearly empty and those pages look cheap.
    today_units, yesterday_units = _units_ordered(out / "viewer-year" / "mp.db", moscow_now.date().isoformat(),
                                                  yesterday)
    report.add("4 viewer", f"units ordered today ({moscow_now:%Y-%m-%d %H:%M} Moscow time), {year_label}",
               f"{today_units:,}", f"yesterday: {yesterday_units:,}",
               "a day's worth, for the pages of today to mean anything", None, cmd)
    for label, day in timings["day"].items():
        year, window = timings["year"][label], timings["window"][label]
        ratio = year.median / day.median if day.seconds and year.seconds else float("nan")
        past_window = (f"; {options.window_days} days: {_ms(window.median)}, {year.median / window.median:.1f}x"
                       if window.seconds and year.seconds else "")
        failed = day.error or year.error or year.cold_error
        warm = f"{_ms(year.median)} (p95 {_ms(year.p95)})" if not year.error else "ERROR"
        cold = (f"cold {_ms(year.cold_median)}" if not year.cold_error else "cold ERROR") if year.cold or year.cold_error else ""
        unmet = [] if not failed else ["an error"]
        # (a day half a year back is before the history of the 1-day database: its page of it is
        # of an empty day, not the same page with less history, so it is no baseline for the ratio)
        baseline = BEFORE_THEIR_HISTORY not in label
        if year.seconds and year.median * 1000 > WARM_MS:
            unmet.append(f"warm over {WARM_MS} ms" + _warm_unmet(year, ratio if baseline else None))
        if year.cold and year.cold_median * 1000 > COLD_MS:
            unmet.append(f"cold over {COLD_MS / 1000:g} s")
        if ratio > GROWTH and baseline:
            unmet.append(_growth_unmet(year, window, options.window_days))
        report.add("4 viewer", label, f"{year_label}: {warm}" + (f"; {cold}" if cold else ""),
                   (f"1 day: {_ms(day.median)}" + (f"; {ratio:.1f}x" if ratio == ratio else "")
                    if not day.error else "1 day: ERROR") + past_window
                   + ("" if baseline else " (a day before the 1-day database's history: no baseline)"),
                   f"<= {WARM_MS} ms, cold <= {COLD_MS / 1000:g} s, <= {GROWTH}x day", not unmet, cmd,
                   unmet="; ".join(unmet))
        if failed:
            report.data.setdefault("viewer_errors", {})[label] = failed
    report.data["viewer"] = {name: {label: {"median": t.median, "p95": t.p95, "n": len(t.seconds), "rows": t.rows,
                                            "error": t.error, "path": t.path, "cold_median": t.cold_median,
                                            "cold_n": len(t.cold), "cold_error": t.cold_error}
                                    for label, t in ts.items()}
                             for name, ts in timings.items()}


def _undated(options: Options, out: Path, report: Report, log) -> None:
    cmd = "python -m benchmarks --only undated"
    window = _viewer_database(options, out, "window", options.window_days, log, any_day=True)[0]
    log(f"  copying the {options.window_days}-day database, its first {undated.BACKFILLED_DAYS} days of Ozon sales "
        f"undated as a backfill leaves them ...")
    result = undated.measure(window, out / "undated", options.viewer_repeats, options.viewer_budget / 2)
    report.add("4 viewer", f"sales with no day, {options.window_days} days' copy", f"{result.undated:,}",
               f"sales_undated {_mb(result.index_bytes)}; copied and undated in {result.seconds_to_make:.0f} s",
               "", None, cmd)
    for page, dated in result.timings:
        failed = page.error or dated.error
        ratio = page.median / dated.median if not failed else float("nan")
        unmet = "an error" if failed else f"warm over {WARM_MS} ms" if page.median * 1000 > WARM_MS else ""
        report.add("4 viewer", f"  sales, {page.label}", "ERROR" if page.error else
                   f"{_ms(page.median)} (p95 {_ms(page.p95)})",
                   f"{dated.label}: " + ("ERROR" if dated.error else f"{_ms(dated.median)}; {ratio:.1f}x"),
                   f"<= {WARM_MS} ms", not unmet, cmd, unmet=unmet)
        if failed:
            report.data.setdefault("undated_errors", {})[page.label] = failed
    report.data["undated"] = {"sales": result.undated, "index_bytes": result.index_bytes,
                              "pages": {page.label: {"median": page.median, "path": page.path, "error": page.error,
                                                     "dated_median": dated.median, "dated_path": dated.path}
                                        for page, dated in result.timings}}


def _load(options: Options, out: Path, report: Report, log) -> None:
    cmd = "python -m benchmarks --only load"
    database = _viewer_database(options, out, "year", options.year_days, log, any_day=True)[0]
    results = load.measure(database, out / "load", options.load_clients, options.load_requests, options.load_seconds)
    versions, today, uncached, computed = results
    share = today.rate / versions.rate
    report.add("5 load", f"today, {today.clients} clients", f"{today.rate:,.1f} req/s",
               f"/-/versions.json {versions.rate:,.0f} req/s ({share:.3f}x); "
               f"today p50 {_ms(today.median)}, p95 {_ms(today.p95)}; errors {today.errors}",
               ">= 0.25x versions.json", share >= 0.25 and today.errors == 0, cmd)
    for label, result, when in (("without the answer cache (the kept rows read)", uncached,
                                 "(the first request after a pass)"),
                                ("computed (period=day), no answer cache", computed,
                                 "(between a pass's writes and its end)")):
        report.add("5 load", f"  today {label}, {result.clients} clients", f"{result.rate:,.1f} req/s",
                   f"{result.rate / versions.rate:.3f}x versions.json; p50 {_ms(result.median)}, "
                   f"p95 {_ms(result.p95)}; errors {result.errors}", when, None, cmd)
    report.data["load"] = [{"path": r.path, "clients": r.clients, "requests": r.requests, "errors": r.errors,
                            "seconds": r.seconds, "rate": r.rate, "median": r.median, "p95": r.p95} for r in results]


# The export streams a year with the server's memory flat: its peak within this much of its size
# before the export (two pages of rows and their CSV text are a few MB).
EXPORT_MEMORY = 50e6


def _export(options: Options, out: Path, report: Report, log) -> None:
    cmd = "python -m benchmarks --only export"
    database = _viewer_database(options, out, "year", options.year_days, log, any_day=True)[0]
    day = out / "viewer-day" / "mp.db"
    result = export.measure(database, out / "export", day if day.exists() else None, options.export_rows,
                            options.export_view_seconds, options.export_check_days)
    year_label = f"{options.year_days} days" if options.year_days != 365 else "a year"
    for s, whole in ((result.daily, result.expected_rows), (result.stock, None), (result.stock_days, None)):
        capped = s is result.daily and options.export_rows is not None  # the first rows only, by request
        arrived = not s.error and (capped or (s.complete and (whole is None or s.rows == whole)))
        extent = (f"the first {s.rows:,} rows" if capped else
                  f"{s.rows:,} rows" + (f" of {whole:,}" if whole is not None else ""))
        report.add("6 export", f"{s.label}, {year_label}", f"{s.rate:,.0f} rows/s",
                   f"{extent}, {_mb(s.bytes)} in {s.seconds:.0f} s; server RSS {_mb(s.rss_before)} before, "
                   f"peak {_mb(s.rss_peak)} (VmHWM {_mb(s.hwm_after)}); {export.PAGE_ROWS:,} rows: first "
                   f"{_ms(s.pages(True))}, last {_ms(s.pages(False))}",
                   f"every row, RSS within {_mb(EXPORT_MEMORY)}",
                   arrived and s.rss_peak - s.rss_before <= EXPORT_MEMORY, cmd)
    for s, whole in result.queries:
        report.add("6 export", f"{s.label}: a canned query's CSV, {year_label}", f"{s.rate:,.0f} rows/s",
                   f"{s.rows:,} rows of {whole:,}, {_mb(s.bytes)} in {s.seconds:.1f} s (the first row after "
                   f"{s.first_row_seconds:.1f} s)" + (f", ERROR: {s.error}" if s.error else "")
                   + f"; server RSS {_mb(s.rss_before)} -> peak {_mb(s.rss_peak)}",
                   f"every row (not max_returned_rows), RSS within {_mb(EXPORT_MEMORY)}",
                   not s.error and s.complete and s.rows == whole and s.rss_peak - s.rss_before <= EXPORT_MEMORY, cmd)
    s = result.answered
    report.add("6 export", f"{s.label} (the view's «stream all rows»: the export answers), {year_label}",
               f"{s.rate:,.0f} rows/s", f"{s.rows:,} rows in {s.seconds:.0f} s" + (f", ERROR: {s.error}" if s.error else "")
               + f"; server RSS {_mb(s.rss_before)} -> peak {_mb(s.rss_peak)}", "streams, RSS flat",
               not s.error and s.rows > 0 and s.rss_peak - s.rss_before <= EXPORT_MEMORY, cmd)
    views = [(f"{result.view.label}, {year_label}", result.view), (f"{result.view_stock.label}, {year_label}", result.view_stock)]
    if result.small_view is not None:
        views.append((f"{result.small_view.label}, 1 day", result.small_view))
    for label, s in views:
        what = (f"ERROR ({s.error}) after {s.seconds:.1f} s" if s.error and not s.rows
                else f"{s.rows:,} rows in {s.seconds:.0f} s ({s.rate:,.0f} rows/s)"
                + (f", then ERROR: {s.error}" if s.error else ""))
        report.add("6 export", f"Datasette alone: {label}", what,
                   f"a page of {export.VIEW_PAGE_ROWS}: first {_ms(s.pages(True))}, after {len(s.page_seconds)} pages "
                   f"{_ms(s.pages(False))}; server RSS {_mb(s.rss_before)} -> peak {_mb(s.rss_peak)}", "", None, cmd)
    page = result.view_page
    report.add("6 export", "one page of the view export_daily in SQLite, no time limit",
               f"> {result.view_page_budget:.0f} s (stopped)" if page is None else _ms(page),
               f"{year_label}: one query per {export.VIEW_PAGE_ROWS} rows", "", None, cmd)
    for day, (same, rows) in result.checked_days.items():
        report.add("6 export", f"/-/export/daily.csv?day={day}: rows equal the view's", "yes" if same else "NO",
                   f"{rows:,} rows of export_daily (SQLite, no time limit)", "same rows", same, cmd)
    report.data["export"] = {
        "streams": {name: {**vars(s), "rate": s.rate} for name, s in
                    (("daily", result.daily), ("stock", result.stock), ("stock_days", result.stock_days),
                     ("view", result.view), ("answered", result.answered),
                     ("view_stock", result.view_stock), ("small_view", result.small_view)) if s is not None},
        "queries": [{**vars(s), "rate": s.rate, "expected_rows": whole} for s, whole in result.queries],
        "expected_rows": result.expected_rows, "view_page_seconds": result.view_page,
        "view_page_budget": result.view_page_budget,
        "checked_days": {day: {"same": same, "rows": rows} for day, (same, rows) in result.checked_days.items()}}
