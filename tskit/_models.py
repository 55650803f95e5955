"""Wire records of the callbacks API and the catalogue of callback service names.

Field names follow Python conventions; ``from_wire``/``to_wire`` translate to ThingSpace's camelCase.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

from tskit._errors import mask_url
from tskit._secret import Secret

#: Ports ThingSpace accepts in a listener URL (Register Callback Listener page).
ALLOWED_LISTENER_PORTS: Final[frozenset[int]] = frozenset(
    [80, 443, *range(9001, 9007), *range(50551, 50560), *range(28200, 28221)]
)
#: The same ports as a short human-readable text, for error messages and help.
ALLOWED_LISTENER_PORTS_TEXT: Final = "80, 443, 9001-9006, 28200-28220, 50551-50559"


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """One callback service of ThingSpace Connectivity Management.

    Attributes:
        name: The service name as ThingSpace spells it, e.g. ``"CarrierService"``.
        description: One line on what ThingSpace sends to a listener of this service.
    """

    name: str
    description: str


_SERVICES: tuple[ServiceInfo, ...] = (
    ServiceInfo("AlertService", "Messages sent when usage or alert trigger conditions are met."),
    ServiceInfo(
        "CarrierService",
        "Results of state and metadata changes: activate, suspend, restore, deactivate, "
        "change service plan, identifier, custom fields or contact info, move.",
    ),
    ServiceInfo("DevicePRLInformation", "Current PRL values, in reply to a PRL list request."),
    ServiceInfo("DeviceProfileService", "eUICC profile download, enable, disable and delete results."),
    ServiceInfo(
        "DeviceService",
        "Results of device availability and upload requests, and activation order status.",
    ),
    ServiceInfo("DeviceSuspensionStatus", "Suspension information, in reply to a suspension status request."),
    ServiceInfo("DeviceUsage", "Aggregate usage, in reply to an aggregate usage request."),
    ServiceInfo("DiagnosticsService", "SCEF device registration and reachability (awake/sleep) changes."),
    ServiceInfo(
        "EnhancedConnectivityService",
        "SMS sent by devices, and notices when messages sent with POST /sms leave the network.",
    ),
    ServiceInfo("ExtendedEnhancedConnectivityService", "No description published by Verizon."),
    ServiceInfo(
        "ExternalProvisioningChanges",
        "Provisioning changes made outside the API, e.g. in the portal (activate, suspend, change MDN).",
    ),
    ServiceInfo(
        "IntelligenceService",
        "ThingSpace Intelligence notifications: network conditions, coverage, experience score.",
    ),
    ServiceInfo("NetworkEventService", "No description published by Verizon."),
    ServiceInfo(
        "NiddService",
        "NB-IoT Non-IP Data Delivery: data from devices, delivery reports and NIDD configuration results.",
    ),
    ServiceInfo("PromoChanges", "Promo-code changes, e.g. a promo package removed at the end of a billing cycle."),
    ServiceInfo("DevicePromoUsage", "No description published by Verizon."),
    ServiceInfo("PwnService", "Private wireless network events; no description published by Verizon."),
    ServiceInfo("QoS", "ThingSpace Quality-of-Service API results; no description published by Verizon."),
    ServiceInfo("ResumeTrackingNotification", "Sent 7 days before a suspended device resumes automatically."),
    ServiceInfo(
        "SMSDeliveryConfirmation",
        "A device received an SMS sent with POST /sms, or the SMS expired undelivered after 5 days.",
    ),
    ServiceInfo("StateService", "Results of go-to-state requests."),
    ServiceInfo(
        "SubscriptionNotificationService",
        "Data throttling and usage-threshold notices for a subscription.",
    ),
    ServiceInfo("VIPCallbackService", "No description published by Verizon."),
)

#: Every known callback service, by name, in the order of Verizon's register page.
SERVICE_CATALOGUE: Final[Mapping[str, ServiceInfo]] = MappingProxyType({s.name: s for s in _SERVICES})


def _text(data: Mapping[str, Any], key: str, *, required: bool = True) -> str:
    """Read one string field of a wire object, refusing anything that is not a string."""
    value = data.get(key)
    if value is None:
        if required:
            raise ValueError(f"field {key!r} is missing")
        return ""
    if not isinstance(value, str):
        raise ValueError(f"field {key!r} should be a string, got {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class Callback:
    """A callback listener registered for one service of one account.

    Attributes:
        account_name: The billing account, e.g. ``"0000123456-00001"``.
        service_name: The callback service, e.g. ``"CarrierService"``.
        url: Where ThingSpace POSTs the messages of this service, with any secret it holds masked
            (the password of ``user:password@``, the value of a credential in the query such as
            ``?token=********``; see :func:`tskit._errors.mask_url`).
        username: Sent back by ThingSpace inside every message; ``""`` when none was set.
        password: Sent back inside every message; held as a :class:`~tskit.Secret` so it can be
            passed on but never shown.
        password_listed: ``False`` when the listing had no ``password`` field for this listener:
            then its password is unknown (not "none"), and no comparison can rely on it.
    """

    account_name: str
    service_name: str
    url: str
    username: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))
    password_listed: bool = field(default=True, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A URL registered by other means may hold a secret (user:password@, ?token=...): a record
        # never does, so that no frame, snapshot, finding, export or widget made of it can show one.
        if isinstance(self.url, str):
            object.__setattr__(self, "url", mask_url(self.url))

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], account_name: str = "") -> Callback:
        """Build a record from one element of ThingSpace's list response.

        Args:
            data: The element, e.g. ``{"accountName", "serviceName", "url", "username", "password"}``.
                ``name`` is read when ``serviceName`` is missing (the name the register body uses).
            account_name: The account that was listed, used when the element does not name one.
        """
        service_key = "name" if data.get("serviceName") is None and data.get("name") is not None else "serviceName"
        return cls(
            account_name=_text(data, "accountName", required=not account_name) or account_name,
            service_name=_text(data, service_key),
            url=_text(data, "url"),
            username=_text(data, "username", required=False),
            password=Secret(_text(data, "password", required=False)),
            password_listed=data.get("password") is not None,
        )


#: How a register or deregister ended; see :class:`CallbackActionResult`.
Outcome = Literal["sent", "resent", "confirmed"]


@dataclass(frozen=True, slots=True)
class CallbackActionResult:
    """What came of a register or deregister: it took effect, and how tskit knows.

    A result is only returned when ThingSpace holds what was asked; otherwise the call raises.

    Attributes:
        account_name: The account the action applied to.
        service_name: The service registered or deregistered.
        confirmed_by_listing: ``True`` when the outcome was decided by listing the account's
            callbacks (``outcome == "confirmed"``).
        outcome: ``"sent"``: sent once and ThingSpace answered that it was done. ``"resent"``: an
            earlier attempt's outcome was uncertain (timeout, dropped answer, 5xx, an odd answer)
            and a fresh listing showed it had not taken effect, so it was sent again and that
            attempt was answered as done. ``"confirmed"``: an attempt's outcome was uncertain and a
            fresh listing showed the account holding exactly what was asked (for a register: the
            URL, username and password), so it was not sent again.
        url: For a register, the URL as it was sent, which can differ from the one given (scheme
            and host in lower case, an internationalised host in its IDNA form ``xn--…``).
        was_registered: For a deregister: ``True`` when the service had a listener that this call
            removed, ``False`` when ThingSpace answered that it had none, ``None`` when unknown
            (e.g. an uncertain attempt may have removed it).
    """

    account_name: str
    service_name: str
    confirmed_by_listing: bool = False
    outcome: Outcome = "sent"
    url: str | None = None
    was_registered: bool | None = None

    def __post_init__(self) -> None:
        # The two fields say the same thing; either may be given.
        if self.confirmed_by_listing and self.outcome != "confirmed":
            object.__setattr__(self, "outcome", "confirmed")
        elif self.outcome == "confirmed":
            object.__setattr__(self, "confirmed_by_listing", True)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> CallbackActionResult:
        """Build a result from ThingSpace's ``{"accountName", "serviceName"}`` body."""
        return cls(account_name=_text(data, "accountName"), service_name=_text(data, "serviceName"))


#: Why a :class:`Listing` is uncertain; see :class:`~tskit.UncertainListingError`.
ListingReason = Literal["", "unconfirmed", "listings-disagree"]


@dataclass(frozen=True, slots=True)
class Listing:
    """What one account holds, as the client's listings show it, and whether they are sure of it.

    An answer that shows no listener proves nothing on its own (ThingSpace answers an empty body
    both for "none registered" and when something went wrong): absence is certain only when
    further, independent listings agree (see :meth:`ThingSpaceClient.listing
    <tskit.ThingSpaceClient.listing>`). A listener a listing shows is taken as there.

    Attributes:
        account_name: The account listed.
        callbacks: Its listeners, one per service, as the last listing read showed them.
        certain: Whether the listings agree on what is there: ``False`` means the account's
            listeners are unknown; an uncertain listing is never "no listeners".
        reason: ``""`` when certain, else a stable word: ``"unconfirmed"`` (an absence no further
            listing could confirm) or ``"listings-disagree"`` (successive listings differed).
        detail: When uncertain, a sentence saying what was seen.
        reads: How many listings were read.
    """

    account_name: str
    callbacks: tuple[Callback, ...] = ()
    certain: bool = True
    reason: ListingReason = ""
    detail: str = ""
    reads: int = 1

    @property
    def services(self) -> frozenset[str]:
        """The names of the services listed."""
        return frozenset(cb.service_name for cb in self.callbacks)

    def get(self, service_name: str) -> Callback | None:
        """The listener of one service, or ``None`` when the listing shows none."""
        return next((cb for cb in self.callbacks if cb.service_name == service_name), None)
