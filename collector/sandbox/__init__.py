"""A local simulator of the Wildberries and Ozon seller APIs the collector uses.

One HTTP server on loopback answers WB statistics, WB analytics and Ozon paths as
/work/shared/api/*.md describe them, for a generated seller whose data is a pure function of
(seed, time): orders appear, get cancelled, bought out and returned as the clock moves.

    from collector.sandbox import Sandbox, SandboxConfig, Fault, SandboxClock

    clock = SandboxClock(datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc))
    with Sandbox(SandboxConfig(seed=1, rate_limit_factor=0.01), clock=clock) as sb:
        env = sb.env()                      # tokens, keys and base URLs for the collector
        sb.faults.add(Fault(kind="429", endpoint="/api/v1/supplier/sales", account="wb-1"))
        ...                                 # run the collector with env
        clock.advance(minutes=30)
        sb.seller.ordered_units("wb-1", date(2026, 11, 26), clock.now())   # ground truth
"""

from collector.sandbox.clock import SandboxClock
from collector.sandbox.config import SandboxConfig
from collector.sandbox.faults import Fault
from collector.sandbox.server import RequestRecord, Sandbox

__all__ = ["Fault", "RequestRecord", "Sandbox", "SandboxClock", "SandboxConfig"]
