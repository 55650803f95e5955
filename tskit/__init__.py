"""tskit: manage Verizon ThingSpace callback listeners from Jupyter notebooks and scripts.

Examples:
    >>> import tskit
    >>> ts = tskit.connect()  # no THINGSPACE_* credentials set: the embedded simulator
    >>> ts.list_callbacks("0000123456-00001")["service_name"].tolist()
    ['CarrierService', 'DeviceUsage']

``import tskit`` stays light: pandas is imported on the first DataFrame, the simulator on the
first ``connect()`` without credentials, and uvicorn and ipywidgets only where they are used.
"""

import importlib as _importlib

from tskit._client import ThingSpaceClient
from tskit._config import DEFAULT_BASE_URL, Credentials
from tskit._errors import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    FileReason,
    LoginThrottled,
    RateLimitError,
    Reason,
    Remedy,
    RequestTimeout,
    ThingSpaceError,
    TransportError,
    UncertainListingError,
    UnexpectedResponseError,
    ValidationError,
)
from tskit._facade import ThingSpace, connect
from tskit._frames import CALLBACK_COLUMNS, callbacks_frame, services_frame
from tskit._frames import concat as concat_frames
from tskit._models import (
    ALLOWED_LISTENER_PORTS,
    SERVICE_CATALOGUE,
    Callback,
    CallbackActionResult,
    Listing,
    ServiceInfo,
)
from tskit._retry import NO_RETRY, RetryPolicy
from tskit._secret import Secret
from tskit._version import __version__
from tskit.auth import ThingSpaceAuth

__all__ = [
    "ALLOWED_LISTENER_PORTS",
    "CALLBACK_COLUMNS",
    "DEFAULT_BASE_URL",
    "NO_RETRY",
    "SERVICE_CATALOGUE",
    "ApiError",
    "Audit",
    "AuthenticationError",
    "Callback",
    "CallbackActionResult",
    "ConfigurationError",
    "Credentials",
    "DesiredState",
    "FileReason",
    "Journal",
    "Listener",
    "Listing",
    "LoginThrottled",
    "Plan",
    "RateLimitError",
    "Reason",
    "Remedy",
    "RequestTimeout",
    "RetryPolicy",
    "Secret",
    "ServiceInfo",
    "ThingSpace",
    "ThingSpaceAuth",
    "ThingSpaceClient",
    "ThingSpaceError",
    "TransportError",
    "UncertainListingError",
    "UnexpectedResponseError",
    "ValidationError",
    "__version__",
    "callbacks_frame",
    "concat_frames",
    "connect",
    "services_frame",
]


#: Names loaded on first use, to keep ``import tskit`` light: name -> the module that defines it.
_LAZY = {
    "Audit": "tskit.audit",
    "Listener": "tskit.listener",
    "Journal": "tskit.state",
    "DesiredState": "tskit.state",
    "Plan": "tskit.state",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tskit' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # found once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    # The lazy names too, so that tab completion offers them before their first use.
    return sorted({*globals(), *_LAZY})
