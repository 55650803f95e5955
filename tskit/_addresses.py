"""Facts about hosts: which names and addresses are reserved for documentation (RFC 2606, 5737, 3849)."""

from __future__ import annotations

import ipaddress
from typing import Final

DOCUMENTATION_NETWORKS: Final = tuple(
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)
DOCUMENTATION_NAMES: Final = ("example.com", "example.net", "example.org")
#: Reserved top-level names and the documentation domains, as suffixes.
RESERVED_SUFFIXES: Final = (".example", ".invalid", ".test", ".localhost", *(f".{n}" for n in DOCUMENTATION_NAMES))


def is_documentation_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether an address lies in a range reserved for documentation (e.g. 203.0.113.0/24)."""
    return any(address.version == net.version and address in net for net in DOCUMENTATION_NETWORKS)


def is_documentation_name(host: str) -> bool:
    """Whether a host name is reserved for documentation or testing (example.com, *.test, ...)."""
    host = host.lower().rstrip(".")
    return host in DOCUMENTATION_NAMES or host.endswith(RESERVED_SUFFIXES)


def is_loopback_host(host: str) -> bool:
    """Whether a host is this machine: the one rule tskit has for "loopback".

    ``localhost`` and every name under ``.localhost`` (RFC 6761: they resolve to loopback, and
    never through DNS), and loopback addresses: ``127.0.0.0/8``, ``::1``, and IPv4 loopback mapped
    into IPv6 (``::ffff:127.0.0.1``). Case, a trailing dot, IPv6 brackets and an IPv6 zone are
    ignored. Anything else, an empty host, or a short form such as ``127.1`` is not loopback.

    Args:
        host: A host name or address, e.g. ``urlsplit(url).hostname``.
    """
    name = host.strip().lower().removeprefix("[").removesuffix("]")
    name = name[:-1] if name.endswith(".") and not name.endswith("..") else name
    if name == "localhost" or (name.endswith(".localhost") and not name.startswith(".")):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
