"""The callback listener: receive what ThingSpace POSTs, check it, store it durably, read it back.

Examples:
    >>> import tskit
    >>> listener = tskit.Listener(username="tsuser", password="s3cret")  # doctest: +SKIP
"""

from tskit.listener._app import ListenerApp, service_of
from tskit.listener._listener import (
    MESSAGE_COLUMNS,
    Listener,
    NoAuthWarning,
    bind_listener_socket,
    messages_frame,
    read_messages,
)
from tskit.listener._outcomes import MessageRefused, Stored, StoreFailed, StoreOpenError, StoreUnavailable
from tskit.listener._rows import digest
from tskit.listener._sources import VERIZON_SOURCE_ADDRESSES, networks
from tskit.listener._store import MessageStore

__all__ = [
    "MESSAGE_COLUMNS",
    "VERIZON_SOURCE_ADDRESSES",
    "Listener",
    "ListenerApp",
    "MessageRefused",
    "MessageStore",
    "NoAuthWarning",
    "StoreFailed",
    "StoreOpenError",
    "StoreUnavailable",
    "Stored",
    "bind_listener_socket",
    "digest",
    "messages_frame",
    "networks",
    "read_messages",
    "service_of",
]
