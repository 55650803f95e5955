"""The embedded ThingSpace simulator: tskit's default backend when no credentials are set.

It serves the OAuth token (and revoke), the M2M session login and logout, and the three
callbacks calls under the same paths as production, in-process through an httpx2 transport
(:meth:`Simulator.transport`) or over HTTP on loopback (:meth:`Simulator.serve`, or the
``tskit simulator`` command). The server parts (uvicorn) are imported only when serving.

Examples:
    >>> from tskit.simulator import Simulator
    >>> sim = Simulator()
    >>> sim.accounts
    ['0000123456-00001', '0000123456-00002', '0000123456-00003']
"""

from __future__ import annotations

import threading

from tskit.simulator._config import SimulatorConfig
from tskit.simulator._core import RequestRecord, Simulator
from tskit.simulator._delivery import DOCUMENTED, OBSERVED, Delivery, DeliveryAttempt, DeliveryPolicy
from tskit.simulator._demo import (
    DEMO_ACCOUNTS,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_PASSWORD,
    DEMO_USERNAME,
    SANDBOX_ACCOUNTS,
    demo_env,
    fleet_accounts,
    seed_fleet,
)
from tskit.simulator._faults import Fault, Faults
from tskit.simulator._messages import FAULTS, KINDS, RESPONSE_KEYS, build_message, wire
from tskit.simulator._process import simulator_process
from tskit.simulator._replies import Code, Reply
from tskit.simulator._server import SimulatorServer

__all__ = [
    "DEMO_ACCOUNTS",
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "DEMO_PASSWORD",
    "DEMO_USERNAME",
    "DOCUMENTED",
    "FAULTS",
    "KINDS",
    "OBSERVED",
    "RESPONSE_KEYS",
    "SANDBOX_ACCOUNTS",
    "Code",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryPolicy",
    "Fault",
    "Faults",
    "Reply",
    "RequestRecord",
    "Simulator",
    "SimulatorConfig",
    "SimulatorServer",
    "build_message",
    "demo_env",
    "fleet_accounts",
    "seed_fleet",
    "shared",
    "simulator_process",
    "wire",
]


_shared: Simulator | None = None
_shared_lock = threading.Lock()


def shared() -> Simulator:
    """The process's embedded simulator, made on first use with the demo data.

    ``tskit.connect()`` without credentials uses it, so every such connection in a notebook (the
    widgets' included) sees the same accounts and registrations.
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Simulator()
        return _shared
