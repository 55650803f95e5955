"""What the simulated ThingSpace holds: applications, users, accounts and their registrations.

Plain data with no HTTP and no locking: :class:`~tskit.simulator.Simulator` holds the lock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(slots=True)
class Registration:
    """One account's listener for one service.

    Attributes:
        url: Where messages go.
        username: Sent back inside every message.
        password: Sent back inside every message.
        previous_password: The password before the last re-registration, and when it changed:
            ThingSpace keeps sending the old one for minutes.
        changed_at: The simulator clock at that re-registration.
    """

    url: str
    username: str = ""
    password: str = ""
    previous_password: str | None = None
    changed_at: float = 0.0

    def password_at(self, now: float, stale_window: float) -> str:
        """The password a message sent at ``now`` carries."""
        if self.previous_password is not None and now - self.changed_at < stale_window:
            return self.previous_password
        return self.password


@dataclass(slots=True)
class User:
    """A UWS user: password, accounts it may use, failed logins in a row."""

    password: str
    accounts: set[str] = field(default_factory=set)
    failed_logins: int = 0


class State:
    """Applications (OAuth key and secret), users, and accounts with their registrations."""

    def __init__(self) -> None:
        self.clients: dict[str, str] = {}
        self.users: dict[str, User] = {}
        self.accounts: dict[str, dict[str, Registration]] = {}

    def add_client(self, client_id: str, client_secret: str) -> None:
        """Create an OAuth application key and secret."""
        self.clients[client_id] = client_secret

    def add_user(self, username: str, password: str, accounts: Iterable[str] = ()) -> None:
        """Create a UWS user (or change its password) with access to the given accounts."""
        user = self.users.setdefault(username, User(password))
        user.password = password
        for account in accounts:
            self.add_account(account)
            user.accounts.add(account)

    def add_account(self, account_name: str, users: Iterable[str] = ()) -> None:
        """Create an account (no registrations), reachable by the given existing users."""
        self.accounts.setdefault(account_name, {})
        for username in users:
            self.users[username].accounts.add(account_name)

    def register(self, account: str, service: str, url: str, username: str, password: str, now: float) -> None:
        """Set the listener of a service, remembering a replaced password and when it changed."""
        registrations = self.accounts.setdefault(account, {})
        old = registrations.get(service)
        registration = Registration(url, username, password)
        if old is not None and old.password != password:
            registration.previous_password, registration.changed_at = old.password, now
        registrations[service] = registration

    def deregister(self, account: str, service: str) -> bool:
        """Remove the listener of a service; whether there was one."""
        return self.accounts.get(account, {}).pop(service, None) is not None

    def registration(self, account: str, service: str) -> Registration | None:
        """The listener of a service of an account, if any."""
        return self.accounts.get(account, {}).get(service)

    def registrations(self, account: str) -> dict[str, Registration]:
        """Every listener of an account, by service (empty for an unknown account)."""
        return self.accounts.get(account, {})
