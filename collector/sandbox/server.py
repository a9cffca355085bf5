"""The sandbox itself: one HTTP server on loopback for WB statistics, WB analytics and Ozon."""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from collector.sandbox.auth import DEFAULT_CATEGORIES, PERSONAL, Credentials
from collector.sandbox.clock import DAY, SandboxClock, SystemClock, from_us, to_us
from collector.sandbox.config import SandboxConfig
from collector.sandbox.exchange import Call, Reply
from collector.sandbox.faults import FaultSet
from collector.sandbox.limits import RateLimiter
from collector.sandbox.ozon_api import OzonApi
from collector.sandbox.router import Router
from collector.sandbox.seller import Seller
from collector.sandbox.wb_api import WbApi

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05  # how often serve_forever checks for stop(); the default 0.5 s slows tests
TOKEN_AGE_DAYS = 30  # the tokens env() hands out were issued a month before the sandbox started


@dataclass(frozen=True)
class RequestRecord:
    """One request the sandbox served. `time` is the seller's clock when it arrived; `status` is
    None when a `reset` fault dropped the connection; `fault` names the fault that hit it."""

    account: str | None
    method: str
    path: str
    status: int | None
    time: datetime
    fault: str | None = None


class Sandbox:
    """A simulated WB + Ozon seller behind real HTTP. See the package docstring for an example."""

    def __init__(self, config: SandboxConfig | None = None,
                 clock: SandboxClock | SystemClock | None = None):
        self.config = config or SandboxConfig()
        self.clock = clock or SystemClock()
        self.seller = Seller(self.config, self.clock.now())
        self.credentials = Credentials(self.config.seed, self.seller.wb_accounts, self.seller.ozon_accounts)
        self.faults = FaultSet()
        self._stopping = threading.Event()
        limiter = RateLimiter(self.config.rate_limit_factor)
        self._router = Router(
            self.config, WbApi(self.config, self.seller, self.credentials, limiter),
            OzonApi(self.config, self.seller, self.credentials, limiter), self.faults, self._stopping)
        issued = self.seller.origin - TOKEN_AGE_DAYS * DAY
        self._wb_tokens = {account: self.credentials.wb_token(account, issued)
                           for account in self.seller.wb_accounts}
        self._log: list[RequestRecord] = []
        self._log_lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Sandbox:
        """Serve in a daemon thread; port 0 picks a free port (see `url`)."""
        if self._server is not None:
            raise RuntimeError("the sandbox is already running")
        self._stopping.clear()
        self._server = _Server((host, port), _Handler)
        self._server.sandbox = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(POLL_SECONDS,),
                                        name="mp-sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests held by a `timeout` fault are released first."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = self._thread = None

    def wait(self) -> None:
        """Block until the server stops; Ctrl-C interrupts the wait (the CLI then calls stop())."""
        thread = self._thread
        if thread is not None:
            thread.join()

    def __enter__(self) -> Sandbox:
        return self.start() if self._server is None else self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- configuration for the collector ----------------------------------------------------

    def env(self, url: str | None = None) -> dict[str, str]:
        """Environment variables that point the collector at this sandbox: tokens and keys of
        every account, their labels, and the base URLs (all `url`, default self.url)."""
        base = url or self.url
        variables: dict[str, str] = {}
        for n, account in enumerate(self.seller.wb_accounts, start=1):
            variables["WB_API_TOKEN" if n == 1 else f"WB_API_TOKEN_{n}"] = self._wb_tokens[account]
            variables[f"WB_NAME_{n}"] = f"Песочница WB {n}"
        for n, account in enumerate(self.seller.ozon_accounts, start=1):
            variables[f"OZON_CLIENT_ID_{n}"] = self.credentials.ozon_client_id(account)
            variables[f"OZON_API_KEY_{n}"] = self.credentials.ozon_api_key(account)
            variables[f"OZON_NAME_{n}"] = f"Песочница Ozon {n}"
        variables.update(WB_STATISTICS_URL=base, WB_ANALYTICS_URL=base, WB_FINANCE_URL=base, WB_CONTENT_URL=base,
                         OZON_API_URL=base)
        return variables

    def wb_token(self, account: str = "wb-1", *, issued: datetime | None = None, days: int = 180,
                 categories: tuple[int, ...] = DEFAULT_CATEGORIES,
                 token_type: int = PERSONAL) -> str:
        """Mint another token for a cabinet: expired (`issued` long ago), Base (token_type=1),
        or without a category (see collector.sandbox.auth for the constants)."""
        issued_us = to_us(issued or self.clock.now())
        return self.credentials.wb_token(account, issued_us, categories=categories,
                                         token_type=token_type, days=days)

    @property
    def alerts(self):
        """The receiver of the collector's alerts (collector/sandbox/alerts.py): `.received`."""
        return self._router.alerts

    @property
    def alerts_url(self) -> str:
        """The Apprise URL (json://) that delivers alerts to this sandbox."""
        from collector.sandbox.alerts import apprise_url

        return apprise_url(self.url)

    # --- what was asked ---------------------------------------------------------------------

    @property
    def request_log(self) -> list[RequestRecord]:
        """Every request served so far, oldest first (a copy)."""
        with self._log_lock:
            return list(self._log)

    def request_counts(self) -> dict[tuple[str | None, str], int]:
        """{(account, path): requests}."""
        return dict(Counter((record.account, record.path) for record in self.request_log))

    def clear_request_log(self) -> None:
        with self._log_lock:
            self._log.clear()

    # --- serving ----------------------------------------------------------------------------

    def _respond(self, call: Call) -> Reply | None:
        try:
            reply, fault = self._router.respond(call)
        except Exception:  # a bug must not kill the connection thread silently
            log.exception("sandbox failed on %s %s", call.method, call.path)
            reply, fault = Reply(500, {"message": "sandbox internal error"}), None
        record = RequestRecord(call.account, call.method, call.path,
                               reply.status if reply else None, from_us(call.now),
                               fault.kind if fault else None)
        with self._log_lock:
            self._log.append(record)
        return reply


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # several collectors' threads may connect at once
    sandbox: Sandbox


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as requests.Session expects
    # Headers and body leave in two writes; with Nagle's algorithm on, the body would wait for
    # the client's delayed ACK, adding ~40 ms to every request on a kept-alive connection.
    disable_nagle_algorithm = True
    server_version = "mp-sandbox"
    server: _Server

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _handle(self) -> None:
        sandbox = self.server.sandbox
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if sandbox.config.latency_ms:  # a real API's round trip; each connection waits on its own
            time.sleep(sandbox.config.latency_ms / 1000)
        url = urlsplit(self.path)
        call = Call(method=self.command, path=url.path, query=dict(parse_qsl(url.query)),
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=body, now=to_us(sandbox.clock.now()))
        reply = sandbox._respond(call)
        try:
            if reply is None:
                self._reset()
            else:
                self._send(reply)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up, e.g. on a timeout
            self.close_connection = True

    def _send(self, reply: Reply) -> None:
        data = reply.encode()
        self.send_response(reply.status)
        if reply.status != 204:
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if reply.cut:  # Content-Length promised the whole body; half of it comes, then the end
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.close_connection = True  # a clean FIN: the client reads the half, then the end
        elif data:
            self.wfile.write(data)

    def _reset(self) -> None:
        """Close with a TCP RST and no answer, as a crashed proxy does."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def log_message(self, format: str, *args) -> None:
        log.debug("%s " + format, self.address_string(), *args)
