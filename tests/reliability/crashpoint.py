"""`python -m tests.reliability.crashpoint T:S ARGS...`: `python -m collector ARGS`, killed with
SIGKILL inside its T-th write transaction, just before the S-th statement after BEGIN.

Every write the collector makes is one transaction (BEGIN IMMEDIATE ... COMMIT) on one of its
connections; SQLite's trace callback sees each statement as it starts, each row of an
executemany included. At the chosen one the process sends itself SIGKILL: no exception, no
rollback, no atexit, exactly as `kill -9` or the OOM killer ends it, at a point inside a write
that a test can choose and reproduce. A transaction shorter than S is killed just before its
COMMIT.

Before dying it writes "kill T:S <statement> in <tables written so far>" to $MP_CRASH_REPORT.

`python -m tests.reliability.crashpoint count ARGS...` never kills; at exit it writes to
$MP_CRASH_REPORT a JSON list with, per transaction in order, [statements, tables written], the
range a test draws kill points from. Transactions are numbered as they BEGIN; the collector's
accounts run in parallel, so which dataset is the T-th can vary a little from run to run.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import re
import runpy
import signal
import sqlite3
import sys
import threading


def statement_label(sql: str) -> str:
    """A short name for a statement: INSERT INTO orders, UPDATE stock_current, COMMIT, ..."""
    text = " ".join(re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.S).split())
    match = re.match(r"(?i)(INSERT(?: OR \w+)? INTO|UPDATE|DELETE FROM|CREATE \w+(?: IF NOT EXISTS)?|"
                     r"DROP \w+(?: IF EXISTS)?)\s+([\w\"]+)", text)
    if match:
        return f"{match.group(1).upper()} {match.group(2).strip(chr(34))}"
    match = re.match(r"(?i)SELECT\b.*?\bFROM\s+([\w\"]+)", text)
    if match:
        return f"SELECT ... FROM {match.group(1).strip(chr(34))}"
    return text.split(" ")[0].upper() if text else "?"


def main() -> None:
    spec, args = sys.argv[1], sys.argv[2:]
    kill = None if spec == "count" else tuple(int(part) for part in spec.split(":"))
    report = os.environ["MP_CRASH_REPORT"]
    ordinals = itertools.count(1)
    transactions: list[list] = []  # per transaction: [statements so far, tables written so far]
    lock = threading.Lock()
    real_connect = sqlite3.connect

    def die(number: int, position: int, label: str) -> None:
        with open(report, "w", encoding="utf-8") as out:
            out.write(f"kill {number}:{position} {label} in {', '.join(transactions[number - 1][1]) or '-'}\n")
        os.kill(os.getpid(), signal.SIGKILL)

    def connect(*a, **kw):
        conn = real_connect(*a, **kw)
        state = {"number": None, "position": 0}  # this connection's open transaction

        def trace(sql: str) -> None:
            head = sql.lstrip()[:8].upper()
            if head.startswith("BEGIN"):
                with lock:
                    state["number"] = next(ordinals)
                    transactions.append([0, []])
                state["position"] = 0
                return
            number = state["number"]
            if number is None:
                return
            state["position"] += 1
            position, label = state["position"], statement_label(sql)
            entry = transactions[number - 1]
            entry[0] = position
            table = label.rsplit(" ", 1)[-1].strip('"')
            if label.startswith(("INSERT", "UPDATE", "DELETE", "CREATE", "DROP")) and table not in entry[1]:
                entry[1].append(table)
            ending = head.startswith(("COMMIT", "ROLLBACK"))
            if kill and kill[0] == number and (position == kill[1] or (ending and position < kill[1])):
                die(number, position, label)
            if ending:
                state["number"] = None

        conn.set_trace_callback(trace)
        return conn

    sqlite3.connect = connect
    if kill is None:
        atexit.register(lambda: open(report, "w", encoding="utf-8").write(json.dumps(transactions) + "\n"))
    sys.argv = ["collector", *args]
    runpy.run_module("collector", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
