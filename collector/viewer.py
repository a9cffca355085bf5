"""How Datasette serves the database: one command line for the demo, the tests, the systemd
unit (`mp-collector serve`) and a person, so that the options can never drift apart."""

from __future__ import annotations

import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
# What the viewer reads from the environment (the plugin and datasette-auth-passwords).
VIEWER_VARIABLES = ("TIMEZONE", "DATASETTE_PASSWORD_HASH", "DATASETTE_SECRET", "STALE_AFTER_MINUTES")


def datasette_command(database: Path, port: int, host: str = "127.0.0.1", behind_proxy: bool = False,
                      create: bool = False) -> list[str]:
    """The viewer's command line.

    --template-dir: the dashboard, help and login pages in Russian; --static assets:...: their
    CSS (dark mode) and the dashboard's JS; sql_time_limit_ms: no query, canned or ad-hoc, holds
    a connection for more than 3 s; max_returned_rows: the cap of a canned query (full exports
    stream from views with _stream=on instead). The file is opened read-only (not --immutable:
    the collector keeps writing it). behind_proxy: nginx terminates TLS, so the URLs Datasette
    builds must say https://. create: start on an empty file before the collector's first pass.
    """
    command = [sys.executable, "-m", "datasette", "serve", str(database),
               "--metadata", str(PROJECT_DIR / "metadata.yml"),
               "--template-dir", str(PROJECT_DIR / "templates"),
               "--static", f"assets:{PROJECT_DIR / 'static'}",
               "--host", host, "--port", str(port),
               "--setting", "sql_time_limit_ms", "3000",
               "--setting", "max_returned_rows", "5000"]
    if behind_proxy:
        command += ["--setting", "force_https_urls", "on"]
    if create:
        command.append("--create")
    return command
