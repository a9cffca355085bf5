"""From a request to a reply: pick the endpoint and marketplace, then apply any armed fault."""

from __future__ import annotations

import threading

from collector.sandbox import ozon_api, wb_api
from collector.sandbox.alerts import AlertInbox
from collector.sandbox.config import SandboxConfig
from collector.sandbox.exchange import HTML, Call, Endpoint, Reply
from collector.sandbox.faults import REPLACING, SPOILING, Fault, FaultSet, spoil_rows

NGINX_502 = b"""<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx</center>
</body>
</html>
"""


class Router:
    def __init__(self, config: SandboxConfig, wb: wb_api.WbApi, ozon: ozon_api.OzonApi,
                 faults: FaultSet, stopping: threading.Event):
        self._config = config
        self._apis = {"wb": wb, "ozon": ozon}
        self._faults = faults
        self._stopping = stopping
        self._routes = {endpoint.path: endpoint for endpoint in (*wb_api.ENDPOINTS, *ozon_api.ENDPOINTS)}
        self.alerts = AlertInbox(faults)  # the collector's alerts (json://), for the demo and tests

    def respond(self, call: Call) -> tuple[Reply | None, Fault | None]:
        """The reply (None: drop the connection unanswered) and the fault that shaped it."""
        if self.alerts.serves(call):
            return self.alerts.respond(call), None
        endpoint = self._routes.get(call.path)
        api = self._api_for(endpoint, call)
        call.account = api.account_hint(call)
        fault = self._faults.take(call.account, call.path)
        kind = fault.kind if fault else None
        if kind == "reset":
            return None, fault
        if kind in REPLACING:
            return self._replacement(kind, endpoint, api, call), fault
        if kind == "timeout":  # hold, then answer as usual; stop() cuts the wait short
            self._stopping.wait(self._config.timeout_hold_seconds)
        if kind == "huge_page":
            call.page_factor = self._config.huge_page_factor
        reply = self._serve(endpoint, api, call)
        if kind in SPOILING and reply.status == 200:
            reply = self._spoil(fault, endpoint, reply)
        if kind == "cut_body":
            reply.cut = True
        return reply, fault

    def _api_for(self, endpoint: Endpoint | None, call: Call):
        """The marketplace of a known path; for an unknown one, whose headers the call carries."""
        if endpoint is not None:
            return self._apis[endpoint.marketplace]
        return self._apis["ozon" if call.header("Client-Id") or call.header("Api-Key") else "wb"]

    @staticmethod
    def _serve(endpoint: Endpoint | None, api, call: Call) -> Reply:
        if endpoint is None:
            return api.not_found(call)
        if call.method != endpoint.method:
            return api.method_not_allowed(call)
        return api.handle(endpoint, call)

    @staticmethod
    def _replacement(kind: str, endpoint: Endpoint | None, api, call: Call) -> Reply:
        if kind == "html":
            return Reply(502, NGINX_502, HTML)
        if kind == "empty":
            return Reply(200, b"")
        if kind == "204":
            return Reply(204)
        return api.fault_reply(kind, endpoint, call)

    @staticmethod
    def _spoil(fault: Fault, endpoint: Endpoint | None, reply: Reply) -> Reply:
        if fault.kind == "malformed":  # cut the JSON off halfway, as a dropped proxy buffer does
            data = reply.encode()
            return Reply(reply.status, data[:len(data) // 2], reply.content_type, reply.headers)
        field = fault.field or (endpoint.row_field if endpoint else None)
        rows = _rows(reply.body, endpoint.rows if endpoint else None)
        if field and rows:
            spoil_rows(rows if fault.rows is None else rows[:fault.rows], field, fault.kind)
        return reply


def _rows(body: object, where: str | None) -> list:
    """The rows of a body: the list at the dotted path `where` ("" = the body itself); a body
    without rows counts as one row."""
    if where is None:
        return [body] if isinstance(body, dict) else []
    for key in filter(None, where.split(".")):
        body = body.get(key) if isinstance(body, dict) else None
    return body if isinstance(body, list) else []
