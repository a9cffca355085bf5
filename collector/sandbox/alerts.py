"""A receiver for the collector's alerts: what an Apprise `json://` URL posts, kept and listed.

The demo points ALERT_URLS at it so messages can be seen arriving, and tests deliver to it with
the real Apprise over HTTP. POST /alerts stores a message ({"version", "title", "message",
"type", ...} as Apprise's JSON plugin sends it); GET /alerts lists what arrived, oldest first.
Paths below it (/alerts/shop, /alerts/phone) are separate channels into the same inbox, each
message keeping its path. Faults armed for a path (Fault("500", endpoint="/alerts/phone",
times=2)) make that channel fail that many times first, as a channel that is down for a while.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from collector.sandbox.exchange import Call, Reply
from collector.sandbox.faults import FaultSet

PATH = "/alerts"
FAILING = {"500": 500, "502": 502, "503": 503, "429": 429, "429_noheaders": 429}


@dataclass(frozen=True)
class Alert:
    path: str
    title: str
    message: str
    type: str
    received_at: str


def apprise_url(base_url: str) -> str:
    """The Apprise URL that delivers to the receiver of a sandbox at `base_url` (http://host:port)."""
    return "json://" + base_url.split("://", 1)[1].rstrip("/") + PATH


class AlertInbox:
    def __init__(self, faults: FaultSet):
        self._faults = faults
        self._alerts: list[Alert] = []
        self._lock = threading.Lock()

    @staticmethod
    def serves(call: Call) -> bool:
        return call.path == PATH or call.path.startswith(PATH + "/")

    @property
    def received(self) -> list[Alert]:
        with self._lock:
            return list(self._alerts)

    def received_at(self, path: str = PATH) -> list[Alert]:
        return [alert for alert in self.received if alert.path == path]

    def clear(self) -> None:
        with self._lock:
            self._alerts.clear()

    def respond(self, call: Call) -> Reply:
        if call.method == "GET":
            return Reply(200, [asdict(alert) for alert in self.received
                               if call.path == PATH or alert.path == call.path])
        if call.method != "POST":
            return Reply(405, {"error": "GET or POST"})
        fault = self._faults.take(None, call.path)
        if fault is not None and fault.kind in FAILING:
            return Reply(FAILING[fault.kind], {"error": f"receiver down ({fault.kind} fault)"})
        try:
            body = json.loads(call.body or b"{}")
        except (UnicodeDecodeError, ValueError):
            return Reply(400, {"error": "the body must be JSON"})
        if not isinstance(body, dict):
            return Reply(400, {"error": "the body must be a JSON object"})
        alert = Alert(call.path, str(body.get("title") or ""), str(body.get("message") or ""), str(body.get("type") or ""),
                      datetime.now(timezone.utc).isoformat(timespec="seconds"))
        with self._lock:
            self._alerts.append(alert)
        return Reply(200, {"ok": True, "received": len(self._alerts)})
