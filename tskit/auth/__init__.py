"""Login safety: ThingSpace's two-step login, one at a time per identity, never a locked user.

* :mod:`~tskit.auth.protocol`: the token request and login, and what their answers mean (no I/O);
* :mod:`~tskit.auth.coordinator`: one login at a time per identity in the process; cooldowns and
  the refusal memory;
* :mod:`~tskit.auth.guard`: the cross-process lockout guard (file lock and records on disk);
* :mod:`~tskit.auth.leader`: leading one login through the flow;
* :mod:`~tskit.auth.flow`: the ``httpx2.Auth`` flow, :class:`ThingSpaceAuth`;
* :mod:`~tskit.auth.messages`: the sentences, keyed by verdict.
"""

from __future__ import annotations

from tskit.auth.coordinator import ThrottleWait, add_wait_listener, forget_all, remove_wait_listener
from tskit.auth.flow import CALL_DEADLINE, ThingSpaceAuth
from tskit.auth.guard import MAX_FAILED_LOGINS, failures, forget, server
from tskit.auth.protocol import LOGIN_EXTENSION, MAX_LOGIN_ANSWER, Verdict

__all__ = [
    "CALL_DEADLINE",
    "LOGIN_EXTENSION",
    "MAX_FAILED_LOGINS",
    "MAX_LOGIN_ANSWER",
    "ThingSpaceAuth",
    "ThrottleWait",
    "Verdict",
    "add_wait_listener",
    "failures",
    "forget",
    "forget_all",
    "remove_wait_listener",
    "server",
]
