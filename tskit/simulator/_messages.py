"""Callback messages as ThingSpace sends them, for the simulator to deliver.

The envelope (``username``, ``password``, ``requestId``, ``deviceIds``, ``status``,
``callbackCount``, ``maxCallbackThreshold``) and the CarrierService fault, the NiddService
``niddResponse`` shapes and ``faultResponse`` follow Verizon's published examples. The inner
objects of a CarrierService activation, DeviceUsage, ExternalProvisioningChanges and SMS
messages are not published in REST form; their shapes here are the simulator's own, marked so.
"""

from __future__ import annotations

import base64
import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

_counter = itertools.count(1)

#: The kinds of message each service can send; every service can also send "fault".
KINDS: dict[str, tuple[str, ...]] = {
    "CarrierService": ("activation", "fault"),
    "DeviceUsage": ("usage", "fault"),
    "NiddService": ("mo-data", "mt-delivery", "fault"),
    "ExternalProvisioningChanges": ("change", "fault"),
    "EnhancedConnectivityService": ("sms", "fault"),
}


def device_ids() -> list[dict[str, str]]:
    """A fresh device: an IMEI and an ICCID."""
    n = next(_counter)
    return [{"id": f"35{n:013d}", "kind": "IMEI"}, {"id": f"8914800000{n:010d}", "kind": "ICCID"}]


def _body(service: str, kind: str, account_name: str, devices: list[dict[str, str]]) -> tuple[dict[str, Any], str]:
    """The service-specific object and the status, for one kind of message."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    if kind == "fault":
        return {
            "faultResponse": {
                "faultcode": "UnifiedWebService.REQUEST_FAILED.DeviceAlreadyActive",
                "faultstring": "REQUEST_FAILED. Device is already active",
            }
        }, "Failed"
    if (service, kind) == ("CarrierService", "activation"):  # inner shape: simulator's own
        return {
            "deviceResponse": {"activateResponse": {"deviceIds": devices, "state": "active", "servicePlan": "M2M_4G"}}
        }, "Success"
    if (service, kind) == ("NiddService", "mo-data"):
        message = base64.b64encode(b"temperature=21.5").decode()
        return {
            "niddResponse": {
                "niddMONotificationResponse": {"accountName": account_name, "message": message, "deviceIds": devices}
            }
        }, "Success"
    if (service, kind) == ("NiddService", "mt-delivery"):
        return {
            "niddResponse": {
                "niddMTDeliveryResponse": {
                    "accountName": account_name,
                    "deviceIds": devices,
                    "acknowledgeTime": now,
                    "firstAttemptDeliveryTime": now,
                }
            }
        }, "Delivered"
    if (service, kind) == ("DeviceUsage", "usage"):  # simulator's own
        return {
            "deviceUsageResponse": {
                "deviceIds": devices,
                "usage": [{"startTime": now, "bytesUsed": 1048576, "smsUsed": 3}],
            }
        }, "Success"
    if (service, kind) == ("ExternalProvisioningChanges", "change"):  # simulator's own
        return {
            "externalProvisioningChangesResponse": {"deviceIds": devices, "change": "Suspend", "changeTime": now}
        }, "Success"
    if (service, kind) == ("EnhancedConnectivityService", "sms"):  # simulator's own
        return {"smsResponse": {"deviceIds": devices, "message": "hello from the device", "sentTime": now}}, "Success"
    key = service[0].lower() + service[1:] + "Response"  # any other service: simulator's own
    return {key: {"deviceIds": devices, "time": now}}, "Success"


def build_message(
    service: str,
    kind: str | None = None,
    *,
    account_name: str,
    username: str = "",
    password: str = "",
    request_id: str | None = None,
    devices: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """One callback message in ThingSpace's envelope, with ``callbackCount`` 1.

    Args:
        service: The callback service.
        kind: One of :data:`KINDS` for the service (default its first), or ``"fault"``.
        account_name: The account the message is about.
        username: The registered username, sent back inside the body.
        password: The registered password, sent back inside the body.
        request_id: The request id; default a new UUID.
        devices: The device ids; default a fresh device.
    """
    kinds = KINDS.get(service, ("event", "fault"))
    kind = kind or kinds[0]
    if kind not in kinds:
        raise ValueError(f"{service} sends {', '.join(kinds)} messages, not {kind!r}")
    devices = devices or device_ids()
    inner, status = _body(service, kind, account_name, devices)
    return {
        "username": username,
        "password": password,
        "requestId": request_id or str(uuid.uuid4()),
        "deviceIds": devices,
        **inner,
        "status": status,
        "callbackCount": 1,
        "maxCallbackThreshold": 4,
    }
