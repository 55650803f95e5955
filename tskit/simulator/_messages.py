r"""Callback messages as ThingSpace sends them, per service, for the simulator to deliver.

Sources (``thingspace-api.md`` section 4): the envelope, the ``faultResponse`` example and the
CarrierService ``changeIdentifierResponse`` example are Verizon's; the NiddService messages follow
what production sent in December 2025 (section 4.3): **one** top-level ``deviceIds`` entry, the
inner list naming every identifier the network knows, no ``status`` on uploads (MO), delivery
reports ``Queued`` / ``Delivered`` / ``DeliveryFailed`` with a ``reason`` when not delivered, and
``=`` escaped as ``\u003d`` on the wire. ``maxCallbackThreshold`` is the number of attempts the
delivery policy makes (production: 2, the observed single retry).

Verizon publishes no REST shape for the other services: their keys (:data:`RESPONSE_KEYS`) and
inner objects are the simulator's own, marked so in the table, named after the SOAP-era element
where there was one. Identifier kinds are spelled in the mixed case Verizon's examples show
(``ESN``, ``Iccid``, ``iccid``, ``IMEI``, ``Imei``, ``mdn``…): listeners must compare them
case-insensitively.
"""

from __future__ import annotations

import base64
import itertools
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

_counter = itertools.count(1)

#: Service -> (the key of its response object, where that key comes from). Written out, not derived.
RESPONSE_KEYS: Final[dict[str, tuple[str, str]]] = {
    "CarrierService": ("deviceResponse", "documented"),
    "NiddService": ("niddResponse", "documented"),
    "DeviceUsage": ("deviceUsageResponse", "simulator's own (SOAP: Usage)"),
    "ExternalProvisioningChanges": (
        "externalProvisioningChangesResponse",
        "simulator's own (SOAP: ExternalProvisioningChange)",
    ),
    "EnhancedConnectivityService": ("smsResponse", "simulator's own"),
    "SMSDeliveryConfirmation": ("smsDeliveryResponse", "simulator's own (SOAP: SMSDelivery)"),
    "PromoChanges": ("promoChangeResponse", "simulator's own (SOAP: PromoChange)"),
    "DevicePRLInformation": ("prlInformationResponse", "simulator's own (SOAP: PRLInformation)"),
    "DeviceSuspensionStatus": ("deviceSuspendStatusResponse", "simulator's own (SOAP: DeviceSuspendStatus)"),
    "ResumeTrackingNotification": ("resumeTrackingResponse", "simulator's own (SOAP: Comment)"),
    "AlertService": ("alertResponse", "simulator's own"),
    "DeviceProfileService": ("deviceProfileResponse", "simulator's own"),
    "DeviceService": ("deviceServiceResponse", "simulator's own"),
    "DiagnosticsService": ("diagnosticsResponse", "simulator's own"),
    "ExtendedEnhancedConnectivityService": ("extendedSmsResponse", "simulator's own"),
    "IntelligenceService": ("intelligenceResponse", "simulator's own"),
    "NetworkEventService": ("networkEventResponse", "simulator's own"),
    "DevicePromoUsage": ("promoUsageResponse", "simulator's own"),
    "PwnService": ("pwnResponse", "simulator's own"),
    "QoS": ("qosResponse", "simulator's own"),
    "StateService": ("stateResponse", "simulator's own"),
    "SubscriptionNotificationService": ("subscriptionNotificationResponse", "simulator's own"),
    "VIPCallbackService": ("vipResponse", "simulator's own"),
}

#: Service -> (faultcode, faultstring) of its ``fault`` message. The code part after the prefix is
#: from Verizon's catalogue for CarrierService (its example) and DeviceUsage; the others use the
#: documented generic code, since no per-service asynchronous fault is published.
FAULTS: Final[dict[str, tuple[str, str]]] = {
    "CarrierService": (
        "UnifiedWebService.REQUEST_FAILED.DeviceAlreadyActive",
        "REQUEST_FAILED. Device is already active",
    ),
    "DeviceUsage": (
        "UnifiedWebService.INPUT_INVALID.Device.Account.Invalid",
        "INPUT_INVALID. The device was not a part of the account specified",
    ),
    "NiddService": ("UnifiedWebService.REQUEST_FAILED.NiddConfig.Failed", "REQUEST_FAILED. NIDD configuration failed"),
    "EnhancedConnectivityService": (
        "UnifiedWebService.INPUT_INVALID.Device.Account.Invalid",
        "INPUT_INVALID. The device was not a part of the account specified",
    ),
    "SMSDeliveryConfirmation": (
        "UnifiedWebService.REQUEST_FAILED.SmsExpired",
        "REQUEST_FAILED. The SMS expired undelivered after 5 days",
    ),
}
_GENERIC_FAULT: Final = (
    "UnifiedWebService.REQUEST_FAILED.UnexpectedError",
    "REQUEST_FAILED. An unexpected error occurred",
)

#: The kinds of message each service sends; the first is the default; every one also sends "fault".
KINDS: Final[dict[str, tuple[str, ...]]] = {
    "CarrierService": (
        "activation",
        "suspension",
        "restoration",
        "deactivation",
        "service-plan-change",
        "identifier-change",
        "fault",
    ),
    "NiddService": ("mo-data", "mt-delivery", "mt-queued", "mt-failed", "config", "fault"),
    "DeviceUsage": ("usage", "fault"),
    "ExternalProvisioningChanges": ("change", "fault"),
    "EnhancedConnectivityService": ("sms", "fault"),
    "SMSDeliveryConfirmation": ("delivered", "fault"),
    **{
        service: ("event", "fault")
        for service in RESPONSE_KEYS
        if service
        not in {
            "CarrierService",
            "NiddService",
            "DeviceUsage",
            "ExternalProvisioningChanges",
            "EnhancedConnectivityService",
            "SMSDeliveryConfirmation",
        }
    },
}

#: CarrierService kind -> the key under ``deviceResponse`` (Verizon: "other operations put their own key").
_CARRIER_KEYS: Final = {
    "activation": "activateResponse",
    "suspension": "suspendResponse",
    "restoration": "restoreResponse",
    "deactivation": "deactivateResponse",
    "service-plan-change": "changeServicePlanResponse",
    "identifier-change": "changeIdentifierResponse",
}
_CARRIER_STATES: Final = {
    "activation": "active",
    "suspension": "suspend",
    "restoration": "active",
    "deactivation": "deactive",
}


@dataclass(frozen=True, slots=True)
class Device:
    """Every identifier the network knows for one device."""

    imei: str
    iccid: str
    imsi: str
    mdn: str
    msisdn: str
    min: str
    esn: str

    @classmethod
    def new(cls) -> Device:
        """A fresh device with identifiers of the right lengths."""
        n = next(_counter)
        mdn = f"555{n:07d}"
        return cls(f"35{n:013d}", f"8914800000{n:010d}", f"311480{n:09d}", mdn, f"1{mdn}", f"9{n:09d}", f"2{n:010d}")

    def ids(self, *kinds: str) -> list[dict[str, str]]:
        """``[{"id", "kind"}]`` for the given kinds, spelled as given (e.g. ``"Iccid"``)."""
        return [{"id": getattr(self, kind.lower()), "kind": kind} for kind in kinds]


def _time(moment: datetime) -> str:
    """RFC 3339 with milliseconds at UTC offset zero, as production's delivery reports."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _carrier(kind: str, device: Device) -> dict[str, Any]:
    key = _CARRIER_KEYS[kind]
    if kind == "identifier-change":  # Verizon's example
        return {key: {"deviceIds": device.ids("iccid"), "servicePlan": "M2M_4G"}}
    inner: dict[str, Any] = {"deviceIds": device.ids("iccid", "mdn")}  # the simulator's own
    if kind in _CARRIER_STATES:
        inner["state"] = _CARRIER_STATES[kind]
    inner["servicePlan"] = "M2M_5G" if kind == "service-plan-change" else "M2M_4G"
    return {key: inner}


def _nidd(kind: str, device: Device, account_name: str) -> tuple[dict[str, Any], str | None]:
    now = datetime.now(UTC)
    mt_ids = device.ids("IMEI", "Mdn", "MSISDN", "Iccid")
    if kind == "mo-data":
        message = base64.b64encode(b"temperature=21.5").decode()  # padded: '=' goes out as \u003d
        inner = {
            "accountName": account_name,
            "message": message,
            "deviceIds": device.ids("IMEI", "Imsi", "MDN", "Min", "MSISDN", "ICCID"),
        }
        return {"niddMONotificationResponse": inner}, None
    if kind == "mt-delivery":
        report = {"accountName": account_name, "acknowledgeTime": _time(now), "deviceIds": mt_ids}
        return {"niddMTDeliveryResponse": report}, "Delivered"
    if kind == "mt-queued":
        report = {"accountName": account_name, "reason": "Buffered, device not reachable", "deviceIds": mt_ids}
        return {"niddMTDeliveryResponse": report}, "Queued"
    if kind == "mt-failed":
        report = {
            "accountName": account_name,
            "firstAttemptDeliveryTime": _time(now - timedelta(minutes=30)),
            "reason": "Timeout, could not deliver data",
            "deviceIds": mt_ids,
        }
        return {"niddMTDeliveryResponse": report}, "DeliveryFailed"
    config = {"accountName": account_name, "deviceIds": device.ids("IMEI", "ICCID")}  # inner shape: the simulator's own
    return {"niddConfigResponse": config}, "ConfigCreated"


def _own(service: str, kind: str, device: Device, account_name: str) -> dict[str, Any]:
    """The inner object of a service whose REST shape Verizon does not publish: the simulator's own."""
    now = _time(datetime.now(UTC))
    devices = device.ids("Imei", "Iccid")
    if service == "DeviceUsage":
        return {"deviceIds": devices, "usage": [{"startTime": now, "bytesUsed": 1048576, "smsUsed": 3}]}
    if service == "ExternalProvisioningChanges":
        return {"deviceIds": devices, "change": "Suspend", "changeTime": now}
    if service == "EnhancedConnectivityService":
        return {"deviceIds": device.ids("MDN"), "message": "hello from the device", "sentTime": now}
    if service == "SMSDeliveryConfirmation":
        return {"deviceIds": device.ids("MDN"), "deliveryStatus": "Delivered", "deliveredTime": now}
    if service == "ResumeTrackingNotification":
        day = datetime.now(UTC) + timedelta(days=7)
        resume = f"{day.month}/{day.day}/{day.year} 12:00:00 AM"
        return {"deviceIds": devices, "comment": f"Device will be auto resumed on - {resume}"}
    return {"accountName": account_name, "deviceIds": devices, "time": now}


def build_message(
    service: str,
    kind: str | None = None,
    *,
    account_name: str,
    username: str = "",
    password: str = "",
    request_id: str | None = None,
    devices: list[dict[str, str]] | None = None,
    max_callback_threshold: int = 2,
) -> dict[str, Any]:
    """One callback message in ThingSpace's envelope, with ``callbackCount`` 1.

    Args:
        service: The callback service.
        kind: One of :data:`KINDS` for the service (default its first), or ``"fault"``.
        account_name: The account the message is about.
        username: The registered username, sent back inside the body.
        password: The registered password, sent back inside the body.
        request_id: The request id; default a new UUID.
        devices: The top-level ``deviceIds``; default one identifier of a fresh device.
        max_callback_threshold: How many attempts the sender makes (production: 2).

    Raises:
        ValueError: The service does not send that kind of message.
    """
    kinds = KINDS.get(service)
    if kinds is None:
        raise ValueError(f"{service} is not a callback service the simulator knows")
    kind = kind or kinds[0]
    if kind not in kinds:
        raise ValueError(f"{service} sends {', '.join(kinds)} messages, not {kind!r}")
    device = Device.new()
    status: str | None = "Success"
    if kind == "fault":
        code, text = FAULTS.get(service, _GENERIC_FAULT)
        inner: dict[str, Any] = {"faultResponse": {"faultcode": code, "faultstring": text}}
        status, top = "Failed", device.ids("Iccid")
    elif service == "CarrierService":  # Verizon's identifier-change example: from an ESN to an ICCID
        inner, top = (
            {"deviceResponse": _carrier(kind, device)},
            device.ids("ESN" if kind == "identifier-change" else "Iccid"),
        )
    elif service == "NiddService":
        nidd, status = _nidd(kind, device, account_name)
        inner, top = {"niddResponse": nidd}, device.ids("ICCID" if kind == "mo-data" else "IMEI")
    else:
        inner, top = {RESPONSE_KEYS[service][0]: _own(service, kind, device, account_name)}, device.ids("Imei")
    message: dict[str, Any] = {
        "username": username,
        "password": password,
        "requestId": request_id or str(uuid.uuid4()),
        "deviceIds": devices if devices is not None else top,
        **inner,
    }
    if status is not None:  # production sends no status on an upload (MO)
        message["status"] = status
    message["callbackCount"] = 1
    message["maxCallbackThreshold"] = max_callback_threshold
    return message


def wire(message: dict[str, Any]) -> bytes:
    """The message as ThingSpace puts it on the wire: JSON with ``= < > & '`` escaped (as Gson does)."""
    text = json.dumps(message, separators=(",", ":"))
    for char in "=<>&'":  # outside strings JSON has none of these, so only string contents change
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text.encode()
