"""Which source addresses may POST to the listener: an optional allowlist of networks.

Verizon publishes the addresses ThingSpace delivers callbacks from (the register-callback and
about-callback-services pages); the list changes, so it is a starting point to check, not a
guarantee. The address checked is the TCP peer: behind a reverse proxy, filter at the proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Addresses ThingSpace was documented to deliver callbacks from (Verizon's pages, read 2026).
VERIZON_SOURCE_ADDRESSES: Final = (
    "137.117.33.109",
    "168.62.173.153",
    "3.87.163.45",
    "3.91.119.203",
    "54.197.62.209",
    "35.165.205.14",
    "54.200.43.232",
    "34.216.81.234",
)


def networks(specs: Iterable[str]) -> tuple[Network, ...]:
    """Networks from addresses or CIDR blocks; ``"verizon"`` stands for :data:`VERIZON_SOURCE_ADDRESSES`.

    Raises:
        ValueError: An entry is neither, naming it.
    """
    found: list[Network] = []
    for spec in specs:
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            if part.lower() == "verizon":
                found.extend(ipaddress.ip_network(a) for a in VERIZON_SOURCE_ADDRESSES)
                continue
            try:
                network = ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(
                    f"allowed sources: {part!r} is not an address or network (e.g. 203.0.113.7, "
                    "203.0.113.0/24, 2001:db8::/32, or 'verizon')"
                ) from None
            if str(network.network_address) != part.split("/", 1)[0].strip("[]"):
                # 10.0.0.1/8 is ambiguous: one address meant, or the whole network?
                raise ValueError(
                    f"allowed sources: {part!r} has host bits set; write the network ({network}) "
                    f"or the one address ({part.split('/', 1)[0]})"
                )
            found.append(network)
    return tuple(found)


def allowed(host: str | None, allow: tuple[Network, ...]) -> bool:
    """Whether a peer address is inside one of the networks (no networks: everyone is)."""
    if not allow:
        return True
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in allow)
