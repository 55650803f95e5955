"""The simulator's own admin route: trigger a callback delivery from outside Python.

``POST /simulator/v1/trigger`` is not ThingSpace's: it lets ``tskit simulator`` (served on its own)
send callback messages, so that ``--delivery-policy`` and ``--stale-password-window`` can be tried
from a shell. It answers only to loopback peers, with the simulator's own application key and
secret in a Basic header (in sandbox mode, any).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tskit.simulator._replies import Reply, json_reply

if TYPE_CHECKING:
    from tskit.simulator._core import Simulator

TRIGGER_PATH = "/simulator/v1/trigger"
#: Longest a ``"wait": true`` trigger blocks for its delivery.
MAX_WAIT = 60.0


def _loopback(peer: str) -> bool:
    try:
        return ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return False


def _problem(body: Any) -> str:
    if not isinstance(body, dict):
        return "the body must be a JSON object with accountName and serviceName"
    for name in ("accountName", "serviceName"):
        if not isinstance(body.get(name), str) or not body[name]:
            return f"{name} is required (a string)"
    for name in ("kind", "requestId"):
        if body.get(name) is not None and not isinstance(body[name], str):
            return f"{name} must be a string"
    if body.get("policy") not in (None, "observed", "documented"):
        return "policy must be 'observed' or 'documented'"
    if not isinstance(body.get("wait", False), bool):
        return "wait must be true or false"
    return ""


async def trigger(simulator: Simulator, method: str, peer: str, headers: Mapping[str, str], raw: bytes) -> Reply:
    """Answer ``POST /simulator/v1/trigger``: 202 once queued, or 200 with the attempts if ``wait``."""
    if method != "POST":
        return json_reply(405, {"error": "POST a JSON body to trigger a delivery"})
    if not _loopback(peer):
        return json_reply(403, {"error": "the trigger route answers only on loopback"})
    if not simulator.is_client(headers):
        return json_reply(401, {"error": "give the simulator's application key and secret as Basic auth"})
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    problem = _problem(body)
    if problem:
        return json_reply(400, {"error": problem})
    try:
        delivery = simulator.trigger(
            body["accountName"], body["serviceName"], body.get("kind"), request_id=body.get("requestId"),
            policy=body.get("policy"),
        )  # fmt: skip
    except LookupError as error:
        return json_reply(404, {"error": str(error).strip("'\"")})
    except ValueError as error:
        return json_reply(400, {"error": str(error)})
    if body.get("wait"):
        # still pending after MAX_WAIT (the documented policy waits minutes): its state says so
        with contextlib.suppress(TimeoutError):
            await asyncio.to_thread(delivery.wait, MAX_WAIT)
    answer = {
        "delivery": delivery.id,
        "requestId": delivery.request_id,
        "url": delivery.url,
        "state": delivery.state,
        "attempts": [
            {"number": a.number, "statusCode": a.status_code, "outcome": a.outcome} for a in list(delivery.attempts)
        ],
    }
    return json_reply(200 if body.get("wait") else 202, answer)
