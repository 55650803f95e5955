"""The desired state: which listener every service of every account should have, validated.

Passwords are held as :class:`~tskit.Secret` values, or only as a keyed fingerprint: "keep the
password it has now" (what an export writes, since an export never learns to write a password).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from tskit import _validate as check
from tskit._errors import ValidationError
from tskit._frames import frame
from tskit._secret import MASK, Secret
from tskit.state._toml import META, dumps, read, save

if TYPE_CHECKING:
    import pandas as pd

    from tskit.ops import AccountError

#: Top-level names that are not accounts: shared values, and facts about the file itself.
DEFAULTS: Final = "defaults"
FORMAT: Final = "tskit-desired-state/1"
STATE_COLUMNS: Final = ("account_name", "service_name", "url", "username", "password")
_FIELDS: Final = frozenset({"url", "username", "password"})
_META_FLAGS: Final = ("allow_any_port", "allow_unknown_service")
_META_KEYS: Final = ("format", "fingerprint_key_id", *_META_FLAGS)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# A name shown in an error: upper case, words of letters (or of digits only) joined by "_", e.g.
# LISTENER_PW or PW_2; a word mixing letters and digits, or lower case, is how passwords look.
_SHOWN_ENV_NAME = re.compile(r"[A-Z]{1,24}(?:_(?:[A-Z]{1,24}|[0-9]{1,4}))*")
_HIDDEN_ENV_NAME: Final = ("the variable it names", " (not shown: the name may be a password typed in the wrong place)")
_FINGERPRINT = re.compile(r"[0-9a-f]{16}")
_REFERENCE_HELP = (
    'a reference: {env = "VARIABLE"} (the variable holds the password), '
    '{fingerprint = "16 hex digits"} (keep the password it has), or "" for none'
)


@dataclass(frozen=True, slots=True)
class DesiredCallback:
    """The listener one service of one account should have.

    Attributes:
        url: Where ThingSpace should POST the messages.
        username: Sent back inside every message; ``""`` for none.
        password: The password to register (``""`` for none); unknown when :attr:`fingerprint` is set.
        fingerprint: Set when only the password's keyed fingerprint is known: the registration
            must keep the password that has this fingerprint.
        env: The environment variable the password came from, to write the reference back.
    """

    url: str
    username: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))
    fingerprint: str | None = None
    env: str | None = None

    def __repr__(self) -> str:
        return f"DesiredCallback(url={self.url!r}, username={self.username!r}, password={self._password_text()!r})"

    def _password_text(self) -> str:
        if self.fingerprint is not None:
            return f"fingerprint {self.fingerprint}"
        if self.env is not None:
            return f"${self.env}"
        return MASK if self.password else ""

    def reference(self) -> dict[str, str] | str:
        """How the password is written in a file: a reference, or ``""`` for none.

        Raises:
            ValueError: The password was given as text, with no reference to write.
        """
        if self.fingerprint is not None:
            return {"fingerprint": self.fingerprint}
        if self.env is not None:
            return {"env": self.env}
        if self.password:
            raise ValueError("a password given as text cannot be written to a file: give it as {env = ...}")
        return ""


class DesiredState:
    """What every named account should hold: ``{account: {service: DesiredCallback}}``.

    Accounts named with no services are read (and with ``prune=True`` emptied); accounts not named
    are never touched. Build one with :meth:`from_mapping`, :meth:`load` (TOML), or ``ts.export``.

    Attributes:
        accounts: Account name -> service name -> :class:`DesiredCallback`.
        source: Where it came from (a file name, ``"<mapping>"`` or ``"export"``), named in errors.
        key_id: Public name of the key of the fingerprints it holds, if any.
        allow_any_port: Listener URLs were not checked against ThingSpace's ports.
        allow_unknown_service: Service names the catalogue does not know were accepted.
        unread: Accounts a partial export could not read (not in the state), with why.
    """

    def __init__(
        self,
        accounts: Mapping[str, Mapping[str, DesiredCallback]],
        *,
        source: str = "<mapping>",
        key_id: str | None = None,
        allow_any_port: bool = False,
        allow_unknown_service: bool = False,
    ) -> None:
        self.accounts = {a: dict(services) for a, services in accounts.items()}
        self.source = source
        self.key_id = key_id
        self.allow_any_port = allow_any_port
        self.allow_unknown_service = allow_unknown_service
        self.unread: list[AccountError] = []

    def __repr__(self) -> str:
        count = sum(len(s) for s in self.accounts.values())
        return f"<DesiredState from {self.source}: {len(self.accounts)} accounts, {count} listeners>"

    def __iter__(self) -> Iterator[tuple[str, str, DesiredCallback]]:
        for account, services in self.accounts.items():
            for service, wanted in services.items():
                yield account, service, wanted

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DesiredState):
            return NotImplemented
        return self.accounts == other.accounts

    __hash__ = None  # type: ignore[assignment]  # mutable

    @property
    def frame(self) -> pd.DataFrame:
        """One row per desired listener: the columns of ``list_callbacks``, passwords masked."""
        return frame([(a, s, w.url, w.username, w._password_text()) for a, s, w in self], STATE_COLUMNS)

    def to_dict(self) -> dict[str, Any]:
        """The state as a plain mapping, the shape of the TOML file: edit it, then :meth:`from_mapping`.

        Passwords appear as references; a ``"tskit"`` entry names the key of the fingerprints.

        Raises:
            ValueError: A password was given as text (it has no reference to show).
        """
        meta = self.meta()
        data: dict[str, Any] = {META: meta} if len(meta) > 1 else {}
        for account, services in self.accounts.items():
            data[account] = {
                service: {"url": w.url, "username": w.username, "password": w.reference()}
                for service, w in services.items()
            }
        return data

    def meta(self) -> dict[str, Any]:
        """The facts a file keeps about itself: format, key of the fingerprints, relaxed checks."""
        meta: dict[str, Any] = {"format": FORMAT}
        if self.key_id:
            meta["fingerprint_key_id"] = self.key_id
        for flag in _META_FLAGS:
            if getattr(self, flag):
                meta[flag] = True
        return meta

    @classmethod
    def from_mapping(
        cls,
        mapping: Mapping[str, Any],
        *,
        source: str = "<mapping>",
        environ: Mapping[str, str] | None = None,
        allow_any_port: bool = False,
        allow_unknown_service: bool = False,
        from_file: bool = False,
    ) -> DesiredState:
        """Check a mapping ``{account: {service: {"url", "username", "password"}}}`` and build the state.

        A password is a string or :class:`~tskit.Secret` (in Python only), ``{"env": NAME}``, or
        ``{"fingerprint": HEX}``. A ``"defaults"`` entry gives the username and password of
        listeners that name none; a ``"tskit"`` entry holds facts about a file.

        Args:
            mapping: The accounts, and optionally ``"defaults"`` and ``"tskit"``.
            source: Where it came from, named in errors.
            environ: Where ``{"env": NAME}`` is looked up; default ``os.environ``.
            allow_any_port: Accept listener URLs on any port.
            allow_unknown_service: Accept service names the catalogue does not know.
            from_file: The mapping was read from a file, so a password written as text is refused.

        Raises:
            ValidationError: A value the client would refuse; the source, account, service and
                field are named.
        """
        reader = _Reader(source, environ if environ is not None else os.environ, allow_any_port, allow_unknown_service)
        reader.from_file = from_file
        return reader(mapping)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> DesiredState:
        """Read a TOML file (see :mod:`tskit.state`); password references are resolved now."""
        return cls.from_mapping(read(path), source=Path(os.fspath(path)).name, environ=environ, from_file=True)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the state as TOML, passwords as references (never as text)."""
        return save(self, path)

    def dumps(self) -> str:
        """The TOML text :meth:`save` writes."""
        return dumps(self)


class _Reader:
    """Validation of one mapping, naming the source, account and service of each problem."""

    def __init__(
        self, source: str, environ: Mapping[str, str], allow_any_port: bool, allow_unknown_service: bool
    ) -> None:
        self.source = source
        self.environ = environ
        self.allow_any_port = allow_any_port
        self.allow_unknown_service = allow_unknown_service
        self.from_file = False

    def fail(self, where: str, problem: str, allowed: str = "") -> ValidationError:
        return ValidationError(f"{self.source}: {where}", problem, allowed)

    def failed(self, where: str, exc: ValidationError) -> ValidationError:
        """A check's refusal, said of the place in the file: its reason, value and remedy kept."""
        return exc.renamed(f"{self.source}: {where}")

    def __call__(self, mapping: Mapping[str, Any]) -> DesiredState:
        if not isinstance(mapping, Mapping):
            raise self.fail("desired state", f"must be a mapping, not {type(mapping).__name__}", "{account: {...}}")
        meta = mapping.get(META, {})
        if not isinstance(meta, Mapping):
            raise self.fail(f"[{META}]", "must be a table", ", ".join(_META_KEYS))
        key_id = meta.get("fingerprint_key_id")
        if key_id is not None and not isinstance(key_id, str):
            raise self.fail(f"[{META}] fingerprint_key_id", "must be a string")
        fmt = meta.get("format", FORMAT)
        if fmt != FORMAT:
            raise self.fail(f"[{META}] format", f"{fmt!r} is not a format this tskit reads", FORMAT)
        unknown_meta = set(meta) - {"format", *_META_FLAGS, "fingerprint_key_id"}
        if unknown_meta:
            raise self.fail(f"[{META}]", f"unknown keys {sorted(unknown_meta)}", ", ".join(_META_KEYS))
        for flag in _META_FLAGS:
            if not isinstance(meta.get(flag, False), bool):
                raise self.fail(f"[{META}] {flag}", "must be true or false")
        # A file may relax the checks for itself (a listener on another port, a service newer than tskit).
        self.allow_any_port = self.allow_any_port or bool(meta.get("allow_any_port"))
        self.allow_unknown_service = self.allow_unknown_service or bool(meta.get("allow_unknown_service"))
        defaults = mapping.get(DEFAULTS, {})
        if not isinstance(defaults, Mapping):
            raise self.fail(f"[{DEFAULTS}]", "must be a table", "username and password")
        unknown = set(defaults) - {"username", "password"}
        if unknown:
            raise self.fail(f"[{DEFAULTS}]", f"unknown keys {sorted(unknown)}", "username and password")
        accounts: dict[str, dict[str, DesiredCallback]] = {}
        for raw_account, services in mapping.items():
            if raw_account in (DEFAULTS, META):
                continue
            where = f"account {raw_account!r}"
            try:
                account = check.account_name(raw_account)
            except ValidationError as exc:
                raise self.failed(where, exc) from None
            if account in accounts:
                raise self.fail(where, "is named twice")
            if not isinstance(services, Mapping):
                raise self.fail(where, f"must be a table of services, not {type(services).__name__}")
            accounts[account] = {}
            for raw_service, values in services.items():
                service, wanted = self.listener(account, raw_service, values, defaults)
                if service in accounts[account]:
                    raise self.fail(f"[{account}.{service}]", "is named twice")
                accounts[account][service] = wanted
        if key_id is None and any(w.fingerprint for services in accounts.values() for w in services.values()):
            raise self.fail(f"[{META}] fingerprint_key_id", "is missing but fingerprints are used")
        return DesiredState(
            accounts,
            source=self.source,
            key_id=key_id,
            allow_any_port=self.allow_any_port,
            allow_unknown_service=self.allow_unknown_service,
        )

    def listener(
        self, account: str, raw_service: object, values: object, defaults: Mapping[str, Any]
    ) -> tuple[str, DesiredCallback]:
        try:
            service = check.service_name(raw_service, allow_unknown=self.allow_unknown_service)
        except ValidationError as exc:
            raise self.failed(f"account {account}, service {raw_service!r}", exc) from None
        where = f"[{account}.{service}]"
        if not isinstance(values, Mapping):
            raise self.fail(where, f"must be a table with url, username, password, not {type(values).__name__}")
        unknown = set(values) - _FIELDS
        if unknown:
            raise self.fail(where, f"unknown keys {sorted(unknown)}", "url, username and password")
        if "url" not in values:
            raise self.fail(f"{where} url", "is missing", "the listener URL, e.g. https://listener.example.com/cb")
        try:
            url = check.listener_url(values["url"], allow_any_port=self.allow_any_port)
            username = check.credential("username", values.get("username", defaults.get("username")))
        except ValidationError as exc:
            raise self.failed(f"{where} {exc.field}", exc) from None
        given = values["password"] if "password" in values else defaults.get("password")
        return service, self.password(f"{where} password", url, username, given)

    def password(self, where: str, url: str, username: str, given: object) -> DesiredCallback:
        if given is None or given == "":
            return DesiredCallback(url, username)
        if isinstance(given, Secret | str):
            if self.from_file:
                raise self.fail(where, "is written as text; a file never holds a password", _REFERENCE_HELP)
            return DesiredCallback(url, username, Secret(self.credential(where, given)))
        if not isinstance(given, Mapping) or len(given) != 1:
            raise self.fail(where, "is not a password reference", _REFERENCE_HELP)
        (kind, value), *_ = given.items()
        if kind == "env":
            # A mistyped reference may hold the password itself: it is named, never echoed.
            if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
                raise self.fail(where, "the env reference is not a variable name (not shown)", "e.g. LISTENER_PW")
            # A name unlike a variable's ("hunter2", "AKIA7EXAMPLE") may be the password itself, typed in
            # the wrong place: it is named only when it reads as a variable name.
            named, why = (f"the variable {value}", "") if _SHOWN_ENV_NAME.fullmatch(value) else _HIDDEN_ENV_NAME
            if value not in self.environ:
                raise self.fail(where, f"{named} is not set{why}", "set it to the listener password")
            if not self.environ[value]:
                raise self.fail(where, f"{named} is empty{why}", 'set it to the listener password, or "" for none')
            return DesiredCallback(url, username, Secret(self.credential(where, self.environ[value])), env=value)
        if kind == "fingerprint":
            if not isinstance(value, str) or not _FINGERPRINT.fullmatch(value):
                raise self.fail(
                    where, "the fingerprint reference is not a fingerprint (not shown)", "16 lower-case hex digits"
                )
            return DesiredCallback(url, username, fingerprint=value)
        hint = difflib.get_close_matches(str(kind), ["env", "fingerprint"], n=1, cutoff=0.6)
        problem = "has an unknown reference key (not shown)" + (f"; did you mean {hint[0]!r}?" if hint else "")
        raise self.fail(where, problem, _REFERENCE_HELP)

    def credential(self, where: str, value: str | Secret) -> str:
        try:
            return check.credential("password", value)
        except ValidationError as exc:
            raise self.failed(where, exc) from None
