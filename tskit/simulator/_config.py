"""The simulator's settings: its choices where Verizon documents nothing, its timings and limits.

Every field marked "the simulator's own" is a behaviour Verizon does not document; the default is
a guess, and the knob (also on ``tskit simulator``'s command line) lets a test try the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tskit.simulator._replies import Code


@dataclass
class SimulatorConfig:
    """How the simulator behaves where Verizon documents nothing, and its timings.

    Attributes:
        reregister: The simulator's own. Registering a service that already has a listener:
            ``"replace"`` overwrites it and answers 200; ``"error"`` answers 400
            ``REQUEST_FAILED.CallbackAlreadyRegistered``.
        deregister_missing: The simulator's own. Deregistering a service with no listener:
            ``"error"`` answers 400 ``REQUEST_FAILED.CallbackNotRegistered``; ``"ok"`` answers 200.
        empty_list: Listing an account with no callbacks: ``"empty-body"`` (Verizon's documentation)
            or ``"json-array"`` (``[]``, which some clients expect).
        enforce_listener_ports: Refuse listener URLs on ports ThingSpace does not deliver to.
        session_expired_status: The simulator's own. HTTP status for a missing, unknown or expired
            session token (production was once seen answering 401; the code is documented, the
            status is not).
        session_expired_code: Error code for an expired session token (documented:
            ``REQUEST_FAILED.SessionToken.Expired``).
        login_failure_status: The simulator's own. HTTP status for a refused login.
        login_failure_code: The simulator's own. Error code for a refused login.
        token_lifetime: Seconds an OAuth token is valid; a new request within it returns the same token.
        session_idle_timeout: Seconds without use after which a session token expires.
        lockout_after: Failed logins in a row after which a user is locked.
        max_body: Largest request body accepted, in bytes.
        delivery_policy: How callback messages are resent: ``"observed"`` (one retry after ~1.3 s,
            and one when the first attempt is not answered in ~4 s: what production did) or
            ``"documented"`` (three more attempts at 5-minute intervals: what Verizon's docs say).
            ``maxCallbackThreshold`` in each message says how many attempts the policy makes.
        delivery_time_scale: Multiplies every delivery wait and timeout (e.g. 0.01 in tests).
        stale_password_window: Seconds after a re-registration during which messages still carry
            the previous password (production: 9-14 minutes); 0 sends the new one at once.
        sandbox: Behave like the API console's simulator: any client credentials, user name and
            password log in, any bearer and session token is accepted and never expires, and the
            accounts ``TestAccount-1`` (reads) and ``TestAccount-2`` (register) exist.
    """

    reregister: Literal["replace", "error"] = "replace"
    deregister_missing: Literal["error", "ok"] = "error"
    empty_list: Literal["empty-body", "json-array"] = "empty-body"
    enforce_listener_ports: bool = True
    session_expired_status: int = 400
    session_expired_code: str = Code.SESSION_EXPIRED
    login_failure_status: int = 400
    login_failure_code: str = Code.LOGIN_FAILED
    token_lifetime: float = 3600.0
    session_idle_timeout: float = 1200.0
    lockout_after: int = 5
    max_body: int = 64 * 1024
    delivery_policy: Literal["observed", "documented"] = "observed"
    delivery_time_scale: float = 1.0
    stale_password_window: float = 0.0
    sandbox: bool = False
