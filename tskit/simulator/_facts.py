"""The facts about ThingSpace the simulator enforces: its own copy, never the client's.

A fake that read the client's tables could never disagree with the client, so it could never
catch the client's mistakes; these are copied from Verizon's pages (see ``thingspace-api.md``)
and kept here on purpose.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Final

#: The callback service names the register page lists (section 3 of the reference).
SERVICES: Final = frozenset(
    {
        "AlertService",
        "CarrierService",
        "DevicePRLInformation",
        "DeviceProfileService",
        "DeviceService",
        "DeviceSuspensionStatus",
        "DeviceUsage",
        "DiagnosticsService",
        "EnhancedConnectivityService",
        "ExtendedEnhancedConnectivityService",
        "ExternalProvisioningChanges",
        "IntelligenceService",
        "NetworkEventService",
        "NiddService",
        "PromoChanges",
        "DevicePromoUsage",
        "PwnService",
        "QoS",
        "ResumeTrackingNotification",
        "SMSDeliveryConfirmation",
        "StateService",
        "SubscriptionNotificationService",
        "VIPCallbackService",
    }
)

#: Ports ThingSpace delivers callbacks to: 80, 443, 9001-9006, 50551-50559, 28200-28220.
LISTENER_PORTS: Final = frozenset({80, 443, *range(9001, 9007), *range(50551, 50560), *range(28200, 28221)})
LISTENER_PORTS_TEXT: Final = "80, 443, 9001-9006, 50551-50559, 28200-28220"

#: Longest listener username or password ThingSpace accepts ("40 characters or fewer").
MAX_CREDENTIAL: Final = 40

#: The service prefix of Connectivity Management error codes.
CM_PREFIX: Final = "UnifiedWebService"

#: The API console simulator's accounts: reads on the first, register on the second.
SANDBOX_READ_ACCOUNT: Final = "TestAccount-1"
SANDBOX_REGISTER_ACCOUNT: Final = "TestAccount-2"

#: Hosts nobody owns (RFC 2606, 5737, 3849): the simulator never sends a callback there.
DOCUMENTATION_NETWORKS: Final = tuple(
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)
DOCUMENTATION_NAMES: Final = ("example.com", "example.net", "example.org")
RESERVED_SUFFIXES: Final = (".example", ".invalid", ".test", ".localhost", *(f".{n}" for n in DOCUMENTATION_NAMES))


#: An IPv4 address as ``inet_aton`` reads it: 1 to 4 parts, each decimal, octal (0…) or hex (0x…).
_NUMERIC_IPV4: Final = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}")


def host_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host stands for, in any form a connection would read it, or ``None`` for a name.

    ``3405803781``, ``0xcb.0.0x71.5``, ``203.000.113.005`` and ``[::ffff:203.0.113.5]`` are all
    203.0.113.5 to the socket layer.
    """
    host = host.strip("[]").lower().rstrip(".")
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        if not _NUMERIC_IPV4.fullmatch(host):
            return None
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_documentation_host(host: str) -> bool:
    """Whether a host name or address is reserved for documentation or testing."""
    address = host_address(host)
    if address is None:
        host = host.lower().rstrip(".")
        return host in DOCUMENTATION_NAMES or host.endswith(RESERVED_SUFFIXES)
    return any(address.version == net.version and address in net for net in DOCUMENTATION_NETWORKS)


def is_private_address(host: str) -> bool:
    """Whether a host is an address of a private, link-local or reserved network (not loopback)."""
    address = host_address(host)
    if address is None or address.is_loopback:
        return False
    return address.is_private or address.is_link_local or address.is_reserved or address.is_unspecified
