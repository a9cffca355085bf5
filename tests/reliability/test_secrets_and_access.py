"""Secrets and access.

The scan: every `mp-collector` command runs as a real process, configured (as systemd does it)
by one `.env` that holds the sandbox seller's tokens and keys, two recognisable canaries (a WB
token and an Ozon key the marketplace refuses) and the viewer's password hash. They run in
three scenarios: a healthy marketplace, one that refuses every key, and a hostile one that echoes
the credentials it received back in its error pages. Then the viewer is served by
`mp-collector serve` from the same `.env` and every page, JSON and CSV is fetched. No secret (nor
any 23-character piece of one) may appear in any output, log line, the database and its WAL, the
backup, the metrics file, or any page. `test_the_scan_finds_a_leak_when_redaction_is_off` proves
the scan is not blind: with redaction switched off the same hostile marketplace is caught.

Access: with DATASETTE_PASSWORD_HASH set, every data URL refuses an anonymous request (and a
wrong password) and gives nothing away; the right password opens each of them. Nothing the
viewer offers can write to the database: every write attempt leaves it byte for byte the same.
"""

from __future__ import annotations

import base64
import json
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
import yaml
from datasette_auth_passwords.utils import hash_password

from collector.cli import cli
from collector.config import load_settings
from collector.http import ApiClient
from collector.logs import SecretFilter
from collector.pipeline import run_pass
from collector.sandbox import Fault, Sandbox, SandboxConfig
from collector.storage import Storage
from tests.conftest import FAST, SMALL_SELLER
from tests.reliability.helpers import (PROJECT, clean_environ, database_bytes, find_leaks, free_port, mp)

CANARY_WB_TOKEN = "WB-CANARY-TOKEN-3f9c2e71a8d4b605-never-in-output"
CANARY_OZON_KEY = "OZON-CANARY-KEY-8b2d4f6a1c3e5079-never-in-output"
CANARY_PASSWORD = "viewer-canary-password-5e7a9c1b0d"
CANARY_ALERT_PASSWORD = "alert-canary-password-9d3b7f15e2"  # inside an ALERT_URLS entry
PASSWORD_HASH = hash_password(CANARY_PASSWORD, iterations=1000)  # few iterations: fast sign-in
# The same form as the sandbox's tokens, from another seller: what all such JWTs share (their
# header, the start of their claims) is no secret, and `sandbox --print-env` prints its own.
OTHER_SELLER_TOKEN = Sandbox(SandboxConfig(seed=999)).env(url="http://127.0.0.1:1")["WB_API_TOKEN"]
# The scan's setup runs 22 real processes one after another (about a minute on an idle 2-core
# machine) and the first test of the module carries it: 120 s was too little for CI, where the
# other xdist worker shares the two cores.
pytestmark = pytest.mark.timeout(480)
LABELS = ("Песочница", "Канарейка")  # account labels: data a refused request must not show
EXAMPLE_ALIASES = PROJECT / "data" / "aliases.example.csv"


# --------------------------------------------------------------------------------------------
# A hostile marketplace: every answer echoes the credentials of the request

class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        token, key = self.headers.get("Authorization", ""), self.headers.get("Api-Key", "")
        if self.path.startswith("/api/analytics"):  # a proxy's debug page
            self.reply(502, "text/html", f"<html><body><h1>502</h1><pre>{self.headers}</pre></body></html>")
        elif self.path.startswith("/api/") or self.path == "/ping":
            self.reply(401, "application/problem+json",
                       json.dumps({"title": "unauthorized", "detail": f"token {token} is not valid",
                                   "requestId": "echo"}))
        elif self.path.startswith("/v1/returns"):
            self.reply(400, "application/json", json.dumps({"code": 3, "message": f"bad Api-Key: {key}"}))
        else:  # half a JSON body with the key inside, as a broken proxy buffer would cut it
            self.reply(200, "application/json", f'{{"result": {{"items": [{{"echo": "{key}", "token": "{token}"')

    do_POST = do_GET

    def reply(self, status: int, content_type: str, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def hostile():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# --------------------------------------------------------------------------------------------
# Running every command

@dataclass(frozen=True)
class Command:
    args: tuple[str, ...]
    code: int | None = None  # expected exit code; None: a server, stopped with `stop`
    until: str = ""  # a server: the output line that says it is up
    stop: int = signal.SIGTERM
    port: int | None = None  # ... and the port to see answering before it is stopped


def commands(work: Path) -> dict[str, list[Command]]:
    """How the scan runs each command. The canaries are refused, so a pass exits 2."""
    port = free_port()
    return {
        "init-db": [Command(("init-db",), 0)],
        "aliases": [Command(("aliases", "load", str(EXAMPLE_ALIASES)), 0)],
        "run": [Command(("run",), 2), Command(("--log-format", "json", "run"), 2)],
        "check": [Command(("check",), 2)],
        "backfill": [Command(("backfill", "--days", "2"), 2)],
        "schedule": [Command(("--log-format", "json", "schedule", "--every", "60"), until='"event": "pass"')],
        "backup": [Command(("backup", str(work / "backup" / "copy.db")), 0)],
        "maintain": [Command(("maintain",), 0)],
        "rebuild": [Command(("rebuild",), 0)],
        "alerts": [Command(("alerts", "test"), 0), Command(("alerts", "list"), 0)],
        "demo": [Command(("demo", "--port", str(port), "--history-days", "1", "--database",
                          str(work / "demo" / "mp.db")), until="Dashboard:", stop=signal.SIGINT, port=port)],
        "sandbox": [Command(("sandbox", "--print-env", "--port", "8999"), 0)],
        # `serve` runs below, as the viewer every page of the scan comes from.
    }


MARKETPLACE_COMMANDS = ("run", "check", "backfill")  # the ones that talk to a marketplace


def launch(command: Command, work: Path, timeout: float = 90) -> tuple[int | None, str]:
    """Run a command in `work` (where `.env` is); a server is stopped once it says it is up."""
    if command.code is not None:
        done = mp(*command.args, env={}, cwd=work, timeout=timeout)
        return done.returncode, done.stdout + done.stderr
    process = subprocess.Popen([sys.executable, "-m", "collector", *command.args], env=clean_environ(), cwd=work,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    pump = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
    pump.start()
    output, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline and not any(command.until in line for line in output):
        try:
            output.append(lines.get(timeout=0.2))
        except queue.Empty:
            if process.poll() is not None:
                break
    up = any(command.until in line for line in output)
    while up and command.port and time.monotonic() < deadline:  # serving, not just about to
        try:
            requests.get(f"http://127.0.0.1:{command.port}/robots.txt", timeout=2)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    process.send_signal(command.stop)
    try:
        code = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
    pump.join(timeout=10)  # the rest of the output, up to the process's end
    while not lines.empty():
        output.append(lines.get())
    assert up, "".join(output)[-3000:]
    return code, "".join(output)


def _pump(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)


@dataclass
class Scan:
    work: Path
    sandbox: Sandbox
    secrets: list[str]
    outputs: dict[str, str] = field(default_factory=dict)
    codes: dict[str, tuple[int | None, int]] = field(default_factory=dict)  # (exit code, expected)
    pages: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    viewer: str = ""

    @property
    def database(self) -> Path:
        return self.work / "mp.db"


def env_file(values: dict[str, str]) -> str:
    return "".join(f"{name}={value}\n" for name, value in values.items())


@pytest.fixture(scope="module")
def scan(tmp_path_factory, hostile) -> Scan:
    work = tmp_path_factory.mktemp("secrets")
    sandbox = Sandbox(SandboxConfig(seed=5, rate_limit_factor=float(FAST), wb_refresh_minutes=1, **SMALL_SELLER)).start()
    settings = {**sandbox.env(), "WB_API_TOKEN_2": CANARY_WB_TOKEN, "WB_NAME_2": "Канарейка WB",
                "OZON_CLIENT_ID_3": "987654321", "OZON_API_KEY_3": CANARY_OZON_KEY,
                "OZON_NAME_3": "Канарейка Ozon",
                "DATABASE_PATH": str(work / "mp.db"), "ALIASES_FILE": str(work / "aliases.csv"),
                "METRICS_FILE": str(work / "mp.prom"), "RATE_LIMIT_FACTOR": FAST, "HTTP_TIMEOUT": "2",
                "MAX_RETRY_WAIT": "1", "DATASETTE_PASSWORD_HASH": PASSWORD_HASH,
                # a webhook with a password, delivered to the sandbox's receiver
                "ALERT_URLS": sandbox.alerts_url.replace("json://", f"json://seller:{CANARY_ALERT_PASSWORD}@", 1)}
    secrets = [v for k, v in settings.items() if k.startswith(("WB_API_TOKEN", "OZON_API_KEY"))]
    result = Scan(work, sandbox, secrets + [CANARY_PASSWORD, PASSWORD_HASH, CANARY_ALERT_PASSWORD])
    try:
        env = work / ".env"
        env.write_text(env_file(settings), encoding="utf-8")
        def scenario(name: str, runs: list[Command]) -> None:
            for command in runs:
                key = f"{name}: {' '.join(command.args)}"
                started = time.monotonic()
                code, result.outputs[key] = launch(command, work)
                result.seconds[key] = round(time.monotonic() - started, 2)
                result.codes[key] = (code, 0 if command.code is None else command.code)

        scenario("healthy", [command for runs in commands(work).values() for command in runs])
        sandbox.faults.add(Fault("bad_key", times=None))
        scenario("every key refused", [c for name in MARKETPLACE_COMMANDS for c in commands(work)[name]])
        sandbox.faults.clear()
        env.write_text(env_file({**settings, "WB_STATISTICS_URL": hostile, "WB_ANALYTICS_URL": hostile,
                                 "WB_FINANCE_URL": hostile, "WB_CONTENT_URL": hostile,
                                 "OZON_API_URL": hostile}), encoding="utf-8")
        scenario("hostile marketplace", [c for name in MARKETPLACE_COMMANDS for c in commands(work)[name]])
        env.write_text(env_file(settings), encoding="utf-8")
        with served(work) as (url, log):
            result.viewer = url
            yield result
            result.outputs["serve (Datasette's own log)"] = log.read_text(errors="replace")
    finally:
        sandbox.stop()


class served:
    """`mp-collector serve` on a free loopback port: the viewer as systemd runs it."""

    def __init__(self, work: Path):
        self.work, self.port = work, free_port()
        self.log = work / "serve.log"

    def __enter__(self):
        with open(self.log, "wb") as output:
            self.process = subprocess.Popen([sys.executable, "-m", "collector", "serve", "--port", str(self.port)],
                                            env=clean_environ(), cwd=self.work, stdout=output, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(url + "/robots.txt", timeout=2)
                return url, self.log
            except requests.ConnectionError:
                assert self.process.poll() is None and time.monotonic() < deadline, self.log.read_text()
                time.sleep(0.05)

    def __exit__(self, *exc_info):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def test_every_command_is_in_the_scan(scan: Scan):
    scanned = set(commands(scan.work)) | {"serve"}
    assert scanned == set(cli.commands), "add the new command to commands() so the scan runs it"


def test_every_command_did_what_it_should(scan: Scan):
    wrong = {key: (code, scan.outputs[key][-500:]) for key, (code, expected) in scan.codes.items() if code != expected}
    assert wrong == {}
    # The hostile marketplace's echo was really in play: the errors quote what it sent, blanked.
    hostile_run = scan.outputs["hostile marketplace: run"]
    assert "token *** is not valid" in hostile_run and "bad Api-Key: ***" in hostile_run


def data_urls(database: Path) -> list[str]:
    """Every URL that gives data away: each table, view and canned query as a page, JSON and
    CSV, ad-hoc SQL, the file itself, a row, the dashboards, the help and health pages, the
    streamed exports, and Datasette's own JSON."""
    conn = sqlite3.connect(database)
    try:
        names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                                                "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    finally:
        conn.close()
    queries = yaml.safe_load((PROJECT / "metadata.yml").read_text(encoding="utf-8"))["databases"]["mp"]["queries"]
    dashboards = yaml.safe_load((PROJECT / "metadata.yml").read_text(encoding="utf-8"))["plugins"].get(
        "datasette-dashboards", {})
    urls = [f"/mp/{quote(name)}{fmt}" for name in [*names, *queries] for fmt in ("", ".json", ".csv")]
    urls += [f"/-/dashboards/{name}" for name in dashboards]
    urls += ["/mp", "/mp.json", "/.json", "/mp.db", "/mp?sql=select+1", "/mp.json?sql=select+*+from+orders",
             "/mp.csv?sql=select+*+from+fetch_log", "/mp/orders.csv?_stream=on",
             "/mp/orders.csv?_stream=on&_sort_desc=day", "/mp/accounts/wb-1.json",
             "/-/help", "/-/health.json", "/-/metadata.json", "/-/databases.json", "/-/plugins.json",
             "/-/settings.json", "/-/versions.json", "/-/export/daily.csv", "/-/export/stock.csv",
             "/-/export/daily.csv?excel=1&day__gte=2026-01-01"]
    return urls


SIGNED_IN = {  # what a signed-in request gets where it is not simply 200
    "/-/health.json": (200, 503),  # 503 here: the canaries' datasets never succeed
    "/mp.db": (403,),  # Datasette never hands out a file that is being written (not --immutable)
}


def signed_in(url: str) -> tuple[int, ...]:
    # The *_recomputed views (what `rebuild --check` compares the summaries with) have no page for
    # anybody: each recomputes a summary from the whole history (collector/datasette_plugin.py).
    return (403,) if url.split("?")[0].rsplit(".", 1)[0].endswith("_recomputed") else SIGNED_IN.get(url, (200,))


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"seller:{password}".encode()).decode()}


def test_with_a_password_every_data_url_refuses_an_anonymous_request(scan: Scan, figures):
    urls = data_urls(scan.database)
    opened = refused = 0
    with requests.Session() as session:
        for url in urls:
            for who, headers in (("anonymous", {}), ("a wrong password", basic("not-the-password"))):
                response = session.get(scan.viewer + url, headers=headers, allow_redirects=False, timeout=30)
                scan.pages[f"{who} {url}"] = response.text
                login = response.status_code == 302 and response.headers["location"].split("?")[0].endswith("/-/login")
                assert response.status_code == 403 or login, (who, url, response.status_code)
                assert not any(label in response.text for label in LABELS), (who, url)
                assert "wb-1" not in response.text and "ozon-1" not in response.text, (who, url)
                refused += 1
            # The same URL opens with the password, so the refusal above was about the sign-in.
            response = session.get(scan.viewer + url, headers=basic(CANARY_PASSWORD), timeout=30)
            scan.pages[f"signed in {url}"] = response.text if not url.endswith(".db") else ""
            assert response.status_code in signed_in(url), (url, response.status_code)
            opened += 1
        login = session.get(scan.viewer + "/-/login", timeout=30)
        assert login.status_code == 200
        scan.pages["/-/login"] = login.text
    figures["access"] = {"data_urls": len(urls), "refused_requests": refused, "opened_with_password": opened}


WRITES = [  # ad-hoc SQL that would write, if anything let it
    "delete from orders", "insert into accounts values ('x', 'wb', 'x')", "update stock_current set quantity = 0",
    "drop table orders", "create table x (y)", "attach database 'x.db' as x", "pragma journal_mode = delete",
    "vacuum", "replace into accounts values ('wb-1', 'wb', 'x')", "select 1; delete from orders",
    "with x as (select 1) delete from orders", "pragma user_version = 5", "select load_extension('x')",
    "select writefile('x', 'y')", "reindex", "analyze",
]


def test_nothing_in_the_viewer_writes_to_the_database(scan: Scan, figures):
    before = fingerprint(scan.database)
    auth = basic(CANARY_PASSWORD)
    attempts = []
    with requests.Session() as session:
        for sql in WRITES:
            for fmt in ("", ".json", ".csv"):
                attempts.append(session.get(f"{scan.viewer}/mp{fmt}", params={"sql": sql}, headers=auth, timeout=30))
            attempts.append(session.post(f"{scan.viewer}/mp", data={"sql": sql}, headers=auth, timeout=30))
        for path in ("/mp/today", "/mp/freshness", "/mp/orders/-/insert", "/mp/orders/-/upsert", "/mp/-/create",
                     "/mp/orders/-/drop", "/mp/accounts/wb-1/-/delete", "/mp/accounts/wb-1/-/update", "/-/create",
                     "/mp/-/query", "/mp/accounts/-/insert", "/-/export/daily.csv", "/-/export/stock.csv"):
            attempts.append(session.post(scan.viewer + path, json={"row": {"account": "x"}, "rows": [],
                                                                   "table": "x", "sql": "delete from orders"},
                                         headers=auth, timeout=30))
        for method in ("PUT", "DELETE", "PATCH"):
            attempts.append(session.request(method, scan.viewer + "/mp/orders", headers=auth, timeout=30))
    assert [(r.request.method, r.url, r.status_code) for r in attempts if not refused(r)] == []
    assert fingerprint(scan.database) == before
    assert not (scan.work / "x.db").exists() and not (scan.work / "x").exists()
    figures["access"]["write_attempts_refused"] = len(attempts)


def refused(response: requests.Response) -> bool:
    """An error status, or Datasette's way of failing a query with 200: `"ok": false` in JSON,
    an empty CSV, an HTML page with the error."""
    if response.status_code >= 400:
        return True
    if response.url.split("?")[0].endswith(".json"):
        return response.json().get("ok") is False
    if response.url.split("?")[0].endswith(".csv"):
        return response.text.strip() == ""
    return 'class="message-error"' in response.text or "Statement must be a SELECT" in response.text


def fingerprint(database: Path) -> tuple:
    """The database's content and its bytes on disk."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        dump = "\n".join(conn.iterdump())
        version = conn.execute("PRAGMA user_version").fetchone()
    finally:
        conn.close()
    return dump, version, database.read_bytes()


def test_no_secret_appears_in_any_output_the_database_or_any_page(scan: Scan, figures):
    # The pages are those the access test fetched; fetch them here too when it did not run.
    if not any(key.startswith("signed in") for key in scan.pages):
        with requests.Session() as session:
            for url in data_urls(scan.database):
                response = session.get(scan.viewer + url, headers=basic(CANARY_PASSWORD), timeout=30)
                scan.pages[f"signed in {url}"] = "" if url.endswith(".db") else response.text
    conn = sqlite3.connect(scan.database)
    errors = "\n".join(e for (e,) in conn.execute("SELECT coalesce(error, '') FROM fetch_log"))
    conn.close()
    assert CANARY_WB_TOKEN not in errors and "wb-2 (Канарейка WB)" in errors  # the canaries were used
    sources: dict[str, str | bytes] = {f"output of {key}": text for key, text in scan.outputs.items()}
    sources.update({f"page {key}": text for key, text in scan.pages.items()})
    sources["fetch_log errors"] = errors
    sources["database"] = database_bytes(scan.database)
    sources["backup"] = database_bytes(scan.work / "backup" / "copy.db")
    sources["metrics file"] = (scan.work / "mp.prom").read_text()
    sources["demo database"] = database_bytes(scan.work / "demo" / "mp.db")
    assert find_leaks(scan.secrets, sources, shapes=[OTHER_SELLER_TOKEN]) == []
    figures["secrets"] = {
        "commands": sorted(set(cli.commands)), "command_runs": len(scan.outputs),
        "scenarios": ["healthy", "every key refused", "hostile marketplace echoing credentials"],
        "pages_scanned": len(scan.pages), "secrets": len(scan.secrets),
        "command_seconds": round(sum(scan.seconds.values()), 1),
        "bytes_scanned": sum(len(v) for v in sources.values()), "leaks": 0,
    }


def test_the_scan_finds_a_leak_when_redaction_is_off(hostile, tmp_path, monkeypatch):
    """The detector is not blind: with the collector's redaction switched off, the hostile
    marketplace's echo lands in fetch_log and the scan says so."""
    monkeypatch.setattr(ApiClient, "redact", lambda self, text: text)
    monkeypatch.setattr(SecretFilter, "scrub", lambda self, text: text)
    settings = load_settings(None, {"WB_API_TOKEN": CANARY_WB_TOKEN, "OZON_CLIENT_ID_1": "1",
                                    "OZON_API_KEY_1": CANARY_OZON_KEY, "WB_STATISTICS_URL": hostile,
                                    "WB_ANALYTICS_URL": hostile, "OZON_API_URL": hostile,
                                    "WB_FINANCE_URL": hostile, "WB_CONTENT_URL": hostile,
                                    "DATABASE_PATH": str(tmp_path / "mp.db"), "RATE_LIMIT_FACTOR": FAST,
                                    "MAX_RETRY_WAIT": "1"})
    storage = Storage(settings.database_path)
    storage.migrate()
    try:
        run_pass(settings, storage)
        errors = "\n".join(e for (e,) in storage.db.execute("SELECT error FROM fetch_log"))
    finally:
        storage.close()
    leaks = find_leaks([CANARY_WB_TOKEN, CANARY_OZON_KEY], {"fetch_log": errors,
                                                             "database": database_bytes(settings.database_path)})
    assert sorted(leaks) == ["database: secret 1 (WB-C…)", "database: secret 2 (OZON…)",
                             "fetch_log: secret 1 (WB-C…)", "fetch_log: secret 2 (OZON…)"]
    # ... and a piece of a secret is caught as well as the whole of it.
    assert find_leaks([CANARY_OZON_KEY], {"a line": f"key ends in {CANARY_OZON_KEY[-23:]}"}) != []
    assert find_leaks([CANARY_OZON_KEY], {"a line": f"key ends in {CANARY_OZON_KEY[-11:]}"}) == []
