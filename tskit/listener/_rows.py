"""What a callback message becomes in the database: the schema, its row, and its digest for redeliveries.

Fields named like a password or secret are dropped, at any depth, before anything is written.
Redeliveries (same service, ``requestId`` and payload, ignoring ``callbackCount`` and
credentials) are stored once; their ``attempts`` counter goes up.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tskit.listener._checks import scrub
from tskit.listener._outcomes import MessageRefused

log = logging.getLogger("tskit.listener")

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    last_received_at TEXT NOT NULL,
    request_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    service TEXT NOT NULL,
    status TEXT NOT NULL,
    device_ids TEXT NOT NULL,
    fault_code TEXT NOT NULL,
    fault_string TEXT NOT NULL,
    callback_count INTEGER,
    attempts INTEGER NOT NULL DEFAULT 1,
    body TEXT NOT NULL,
    UNIQUE (request_id, digest)
)
"""
#: Stores one row, or counts one more arrival of a stored message; returns its id and arrivals.
INSERT = """
INSERT INTO messages (received_at, last_received_at, request_id, digest, service, status, device_ids,
                      fault_code, fault_string, callback_count, body)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (request_id, digest) DO UPDATE SET
    attempts = attempts + 1,
    last_received_at = excluded.last_received_at,
    callback_count = max(coalesce(callback_count, 0), coalesce(excluded.callback_count, 0))
RETURNING id, attempts
"""
#: Fields that differ between redeliveries of the same message, left out of its digest.
_VOLATILE = frozenset({"username", "password", "callbackCount"})


def digest(body: Mapping[str, Any], service: str = "") -> str:
    """A digest of what makes a message itself (its service included), for recognising redeliveries."""
    core = {k: v for k, v in scrub(body).items() if k not in _VOLATILE}
    if service:  # the same body POSTed to another service's URL is another message
        core = {"": service, **core}
    return hashlib.sha256(json.dumps(core, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def _text(value: Any) -> str:
    """A column's text: strings as they are, numbers as written (a numeric ``requestId``), else ``""``."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return json.dumps(value)
    return ""


def row(body: Mapping[str, Any], service: str) -> tuple[Any, ...]:
    """The columns of one message; secrets are dropped, at any depth, before anything is written."""
    kept = scrub(body)
    found = body.get("faultResponse")
    fault: Mapping[str, Any] = found if isinstance(found, dict) else {}
    devices = body.get("deviceIds") if isinstance(body.get("deviceIds"), list) else []
    count = body.get("callbackCount")
    now = datetime.now(UTC).isoformat()
    return (
        now,
        now,
        _text(body.get("requestId")),
        digest(body, service),
        service,
        _text(body.get("status")),
        json.dumps(scrub(devices)),
        _text(fault.get("faultcode")),
        _text(fault.get("faultstring")),
        count if isinstance(count, int) and not isinstance(count, bool) else None,
        json.dumps(kept),
    )


def storable_row(body: Mapping[str, Any], service: str) -> tuple[Any, ...]:
    """:func:`row`, or :class:`MessageRefused` when the message cannot be turned into one."""
    try:
        return row(body, service)
    except (ValueError, TypeError, RecursionError) as error:
        log.info("a message could not be stored: %s", error)
        raise MessageRefused("this message cannot be stored") from None
