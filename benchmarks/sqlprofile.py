"""Where a canned query spends its time: the query plan, and each CTE on its own (everything up
to it, rows fetched), on a generated database, with the plugin's functions.

    python -m benchmarks.sqlprofile summary
    python -m benchmarks.sqlprofile restock soon=1 --database benchmarks/out/viewer-year/mp.db
    python -m benchmarks.sqlprofile --sql-file /tmp/today.sql date=2026-12-03

A CTE's time includes the CTEs it reads (SQLite computes a CTE again for each query that names
it), so the step that costs is where the time jumps. The database is opened read-only.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import statistics
import sys
import time
from pathlib import Path

import yaml

from collector import datasette_plugin

ROOT = Path(__file__).resolve().parent.parent
CTE_START = re.compile(r"^\s*(?:WITH\s+(?:RECURSIVE\s+)?)?(\w+)(?:\([^)]*\))?\s+AS\s+(?:MATERIALIZED\s+)?\($", re.I)


def canned_sql(name: str, metadata: Path = ROOT / "metadata.yml") -> tuple[str, list[str]]:
    """The query's SQL and every parameter it binds (its own and the HTML page's `_page_*`),
    which the caller gives as Datasette gives a blank one: ''."""
    sql = yaml.safe_load(metadata.read_text(encoding="utf-8"))["databases"]["mp"]["queries"][name]["sql"]
    return sql, sorted(set(re.findall(r"(?<!:):(\w+)", re.sub(r"--[^\n]*", "", sql))))


def connect(database: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    datasette_plugin.prepare_connection(conn)
    return conn


def ctes(sql: str) -> tuple[str, list[str]]:
    """The WITH clause's head ("WITH" or "WITH RECURSIVE") and the names of its CTEs, in order."""
    head = "WITH RECURSIVE" if re.search(r"\bWITH\s+RECURSIVE\b", sql, re.I) else "WITH"
    names = [m.group(1) for line in sql.splitlines() if (m := CTE_START.match(line))]
    return head, names


def with_clause(sql: str) -> str:
    """Everything before the main SELECT: the text up to the last line that closes a CTE."""
    lines = sql.splitlines()
    last = max(i for i, line in enumerate(lines) if re.match(r"^\s*\)\s*,?\s*$", line))
    return "\n".join(lines[:last + 1]).rstrip().rstrip(",")


def timed(conn: sqlite3.Connection, sql: str, params: dict, repeats: int) -> tuple[float, int]:
    """Median seconds to run and fetch every row, and the rows."""
    seconds, rows = [], 0
    for _ in range(repeats):
        began = time.perf_counter()
        rows = len(conn.execute(sql, params).fetchall())
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds), rows


def plan(conn: sqlite3.Connection, sql: str, params: dict) -> list[str]:
    depth = {0: -1}
    lines = []
    for node, parent, _, detail in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params):
        depth[node] = depth.get(parent, -1) + 1
        lines.append("  " * depth[node] + detail)
    return lines


def profile(conn: sqlite3.Connection, sql: str, params: dict, repeats: int = 3) -> list[tuple[str, float, int]]:
    """(step, median seconds, rows): each CTE with what it reads, then the whole query."""
    head, names = ctes(sql)
    prefix = with_clause(sql)
    steps = [(name, f"{prefix}\nSELECT * FROM {name}") for name in names]
    steps.append(("(whole query)", sql))
    return [(name, *timed(conn, text, params, repeats)) for name, text in steps]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sqlprofile", description=__doc__.split("\n\n")[0])
    parser.add_argument("query", nargs="?", help="a canned query of metadata.yml")
    parser.add_argument("params", nargs="*", help="name=value, the query's parameters (the rest are '')")
    parser.add_argument("--sql-file", type=Path, help="SQL to profile instead of a canned query")
    parser.add_argument("--database", type=Path, default=ROOT / "benchmarks" / "out" / "viewer-year" / "mp.db")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-plan", action="store_true")
    args = parser.parse_args(argv)
    if args.sql_file:
        if args.query:  # (with --sql-file every positional is a parameter)
            args.params.insert(0, args.query)
        sql = args.sql_file.read_text(encoding="utf-8")
        names = re.findall(r":(\w+)", sql)
    else:
        sql, names = canned_sql(args.query)
    params = {name: "" for name in names}
    params.update(dict(p.split("=", 1) for p in args.params))
    conn = connect(args.database)
    if not args.no_plan:
        print("\n".join(plan(conn, sql, params)), end="\n\n")
    for name, seconds, rows in profile(conn, sql, params, args.repeats):
        print(f"{name:28} {seconds * 1000:9.1f} ms {rows:9,} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
