"""How Datasette serves the database: one command line for the demo, the tests, the systemd
unit (`mp-collector serve`) and a person, so that the options can never drift apart."""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
# What the viewer reads from the environment (the plugin and datasette-auth-passwords).
VIEWER_VARIABLES = ("TIMEZONE", "DATASETTE_PASSWORD_HASH", "DATASETTE_SECRET", "STALE_AFTER_MINUTES")
# Set by a parent that starts the viewer as its child (`demo`): the viewer stops when it is gone.
PARENT_VARIABLE = "MP_VIEWER_PARENT_PID"
# How long uvicorn waits for requests in flight on a stop (a big CSV export) before it cuts them:
# the whole stop stays within the 5 s a supervisor gives.
SHUTDOWN_SECONDS = 2.0
EXIT_STOPPED = 0  # = collector.stopping.EXIT_STOPPED; not imported, to keep this start light
PR_SET_PDEATHSIG = 1


# Datasette's settings as the viewer is served with them.
# sql_time_limit_ms: no query, canned or ad-hoc, holds a connection for more than 3 s.
# max_returned_rows: the cap of a canned query (full exports stream instead).
# suggest_facets off: a table's page would try a facet on each of its columns, ~2 s for `orders`
# at a year (facets asked for still work).
# max_csv_mb 0: «stream all rows» sends the whole table, as /-/export/*.csv sends the whole year.
# Datasette's default (100 MB) cut a big seller's raw orders after about two weeks and ended the
# file with its error text as a last line. A stream holds one page in memory at a time, and each
# page is under sql_time_limit_ms, so an unlimited stream costs time, not memory.
# cache_size_kb: each of Datasette's connections (one per SQL thread, three) keeps 8 MB of pages
# instead of SQLite's 2 MB, at most 24 MB in all. A page of thousands of rows looks up the same
# summary pages again and again: `history` as JSON at a year, 5,000 rows, 83 -> 63 ms; larger
# caches gained nothing more (docs/performance-log.md, the thirty-sixth step).
SETTINGS = {"sql_time_limit_ms": 3000, "max_returned_rows": 5000, "suggest_facets": "off", "max_csv_mb": 0,
            "cache_size_kb": 8192}


# Set by main(): this process is the viewer as served, and start-up's objects live as long as it.
serving = False


def freeze_what_start_up_loaded() -> None:
    """Leave every object alive after start-up (modules, templates, the metadata: ~68,000) out of
    Python's later garbage collections (gc.freeze). A full collection walks them all again
    whenever enough new objects have outlived the younger ones, which answers of thousands of
    rows bring about every few requests: a pause of up to 66 ms inside a request, the slowest
    twentieth of the big pages (docs/performance-log.md, the thirty-sixth step). None of them would
    be freed before the process ends anyway."""
    gc.collect()
    gc.freeze()


def datasette_command(database: Path, port: int, host: str = "127.0.0.1", behind_proxy: bool = False,
                      create: bool = False) -> list[str]:
    """The viewer's command line.

    --template-dir: the dashboard, help and login pages in Russian; --static assets:...: their
    CSS (dark mode) and the dashboard's JS; SETTINGS above. The file is opened read-only (not
    --immutable: the collector keeps writing it). behind_proxy: nginx terminates TLS, so the URLs
    Datasette builds must say https://. create: start on an empty file before the collector's
    first pass. It runs Datasette's own CLI through main() below, for the stop.
    """
    command = [sys.executable, "-m", "collector.viewer", "serve", str(database),
               "--metadata", str(PROJECT_DIR / "metadata.yml"),
               "--template-dir", str(PROJECT_DIR / "templates"),
               "--static", f"assets:{PROJECT_DIR / 'static'}",
               "--host", host, "--port", str(port)]
    for name, value in SETTINGS.items():
        command += ["--setting", name, str(value)]
    if behind_proxy:
        command += ["--setting", "force_https_urls", "on"]
    if create:
        command.append("--create")
    return command


def main(argv: list[str]) -> None:
    """`python -m collector.viewer serve ...`: Datasette's own CLI, in this process, stopping
    within 5 s with exit code 0 on SIGTERM or SIGINT at any moment.

    Datasette alone does not: before uvicorn serves (importing takes a second or more) SIGTERM
    kills it by default and SIGINT prints a traceback; once serving, uvicorn waits for requests in
    flight without a limit, then re-raises the signal to die by it.
    """
    # SIGINT first: whoever sees SIGTERM caught (a supervisor, the tests reading SigCgt) may send
    # either, and a SIGINT between the two lines would raise KeyboardInterrupt, a traceback.
    signal.signal(signal.SIGINT, _exit_stopped)
    signal.signal(signal.SIGTERM, _exit_stopped)
    if os.environ.get(PARENT_VARIABLE):
        die_with_parent(int(os.environ.pop(PARENT_VARIABLE)))
    global serving
    serving = True

    import uvicorn
    from datasette.cli import cli

    # Datasette calls uvicorn.run() without a shutdown limit; uvicorn handles the signals while it
    # serves, then restores _exit_stopped and re-raises the signal to it.
    serve = uvicorn.run
    uvicorn.run = lambda app, **options: serve(app, timeout_graceful_shutdown=SHUTDOWN_SECONDS, **options)
    cli.main(args=argv, prog_name="datasette")


def _exit_stopped(_signum, _frame) -> None:
    """Before uvicorn serves there is nothing to close (the database is opened read-only), and
    after it has shut down there is nothing left: exit at once."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(EXIT_STOPPED)


def die_with_parent(parent: int) -> None:
    """Stop when `parent` is gone, even killed with SIGKILL, so that no Datasette is left holding
    the port. Linux: the kernel sends SIGTERM (prctl PR_SET_PDEATHSIG; the parent starts this
    process from its main thread, which lives as long as the parent). Elsewhere: a thread polls."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0
    except (OSError, AttributeError):
        armed = False
    if os.getppid() != parent:  # gone already, before the prctl above could take effect
        os.kill(os.getpid(), signal.SIGTERM)
    if not armed:
        threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    main(sys.argv[1:])
