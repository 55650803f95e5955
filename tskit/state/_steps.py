"""Plans as data: one step to carry out, a listener as a plan saw it, and the refusals of a used or stale plan."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from tskit._errors import Reason, ThingSpaceError
from tskit._fingerprint import fingerprint
from tskit._models import Callback
from tskit._secret import Secret


class StalePlanError(ThingSpaceError):
    """A plan too old to apply: ThingSpace may hold something else by now. Nothing was sent (``"stale-plan"``)."""

    reason: str = Reason.STALE_PLAN


class PlanUsedError(StalePlanError):
    """A plan already applied (re-running a cell, say): plan again. Nothing was sent (``"plan-used"``)."""

    reason: str = Reason.PLAN_USED


@dataclass(frozen=True, slots=True)
class Live:
    """A registration as a plan saw it: no password, its keyed fingerprint."""

    url: str
    username: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Step:
    """One change to make: create, update or delete the listener of one service of one account.

    Attributes:
        account_name: The account.
        service_name: The service.
        action: ``"create"``, ``"update"`` or ``"delete"``.
        url: The URL to register (for a delete: the URL registered now).
        username: The username to register.
        password: The password to register; never shown, never journaled.
        fingerprint: Keyed fingerprint of that password (``""``: none).
        old: What was registered when planned, or ``None`` (a create).
    """

    account_name: str
    service_name: str
    action: str
    url: str
    username: str
    password: Secret = field(repr=False)
    fingerprint: str
    old: Live | None

    @property
    def id(self) -> str:
        """A name of this change, the same in every plan that wants the same change."""
        text = "\0".join((self.account_name, self.service_name, self.action, self.url, self.username, self.fingerprint))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def took_effect(self, live: Live | None) -> bool:
        """Whether a registration (``None``: none) is what this step asks for."""
        if self.action == "delete":
            return live is None
        return live == Live(self.url, self.username, self.fingerprint)

    def record(self) -> dict[str, str]:
        """What the journal keeps of this step: everything but the password."""
        return {
            "step": self.id,
            "account_name": self.account_name,
            "service_name": self.service_name,
            "action": self.action,
            "url": self.url,
            "username": self.username,
            "password_fingerprint": self.fingerprint,
        }


def live_of(key: bytes, callback: Callback) -> Live:
    """A registration as a plan keeps it."""
    return Live(
        callback.url,
        callback.username,
        fingerprint(key, callback.account_name, callback.service_name, callback.password.reveal()),
    )
