"""Plans: the difference between a desired state and what ThingSpace holds, as steps to carry out."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from tskit._errors import ValidationError
from tskit._fingerprint import fingerprint, key_id, load_key
from tskit._frames import categories, frame
from tskit._models import Listing
from tskit._runtime import blocking
from tskit._secret import MASK, Secret
from tskit.ops import ERROR_COLUMNS, AccountError, read_accounts
from tskit.state._apply import ApplyResult, apply_plan
from tskit.state._display import plan_html, plan_text
from tskit.state._lock import LOCK_WAIT, Holder
from tskit.state._model import DesiredState
from tskit.state._steps import Live, PlanUsedError, Step, live_of

if TYPE_CHECKING:
    import pandas as pd

    from tskit._client import ThingSpaceClient
    from tskit._errors import ThingSpaceError
    from tskit.state._journal import Journal

#: The actions of a plan, in the order they are shown.
ACTIONS: Final = ("create", "update", "delete", "keep")
CHANGE_COLUMNS: Final = ("account_name", "service_name", "action", "field", "old", "new")
#: Seconds after which a plan is refused by ``apply``: what ThingSpace holds may have moved on.
MAX_PLAN_AGE: Final = 300.0


class Plan:
    """What ``apply`` would change so that ThingSpace holds a desired state; sends nothing itself.

    Made by ``ts.plan(desired)``. In a notebook it shows the counts per action and the changes,
    coloured by action; as text, a few lines per change.

    Attributes:
        desired: The desired state planned for.
        prune: Whether services the state does not name are deleted.
        steps: The changes: creates, then updates, then deletes (the deletes last, so an apply
            cut short has removed nothing it was about to replace).
        keeps: ``(account, service)`` of listeners already as desired.
        live: What each account read held (fingerprints, no passwords).
        error_list: Accounts that could not be read (they get no changes), and listeners whose
            password is known only by a fingerprint that no longer matches.
        created_at: When the plan was made (UTC).
        source: Where the live state was read.
    """

    def __init__(
        self,
        *,
        client: ThingSpaceClient,
        desired: DesiredState,
        prune: bool,
        steps: Sequence[Step],
        keeps: Sequence[tuple[str, str]],
        live: Mapping[str, Mapping[str, Live]],
        errors: Sequence[AccountError],
        key: bytes,
        source: str,
    ) -> None:
        self.client = client
        self.desired = desired
        self.prune = prune
        self.steps = list(steps)
        self.keeps = list(keeps)
        self.live = {a: dict(s) for a, s in live.items()}
        self.error_list = list(errors)
        self._key = key
        self.key_id = key_id(key)
        self.source = source
        self.created_at = datetime.now(UTC)
        self._created = time.monotonic()
        self._applied = False
        self._applied_lock = threading.Lock()

    # -- what it holds ----------------------------------------------------------------------

    @property
    def age(self) -> float:
        """Seconds since the plan was made."""
        return time.monotonic() - self._created

    @property
    def applied(self) -> bool:
        """Whether :meth:`apply` has run: a plan is used once (plan again to apply again)."""
        return self._applied

    def mark_applied(self) -> None:
        """Use the plan up, once: a second apply (another thread, say) is refused.

        Raises:
            PlanUsedError: It was already applied.
        """
        with self._applied_lock:
            if self._applied:
                raise PlanUsedError(
                    "this plan was already applied: plan again, then apply the new plan; nothing was sent"
                )
            self._applied = True

    @property
    def id(self) -> str:
        """A name of this plan, for the journal."""
        text = "\0".join([self.created_at.isoformat(), *(s.id for s in self.steps)])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def unmanaged(self) -> list[tuple[str, str]]:
        """``(account, service)`` of listeners read but not named by the state, left alone (no prune)."""
        if self.prune:
            return []
        return [(a, s) for a, services in self.live.items() for s in services if s not in self.desired.accounts[a]]

    @property
    def password_changes(self) -> int:
        """How many steps set, change or remove a listener's password."""
        return sum(
            1 for s in self.steps if s.action != "delete" and (s.old.fingerprint if s.old else "") != s.fingerprint
        )

    @property
    def password_replacements(self) -> int:
        """How many steps replace or remove a password a listener has now (not a first password)."""
        return sum(
            1
            for s in self.steps
            if s.action != "delete" and s.old is not None and s.old.fingerprint and s.old.fingerprint != s.fingerprint
        )

    @property
    def has_changes(self) -> bool:
        """Whether applying would send anything."""
        return bool(self.steps)

    def counts(self) -> dict[str, int]:
        """How many listeners per action, in the order of :data:`ACTIONS`."""
        counts = dict.fromkeys(ACTIONS, 0)
        for step in self.steps:
            counts[step.action] += 1
        counts["keep"] = len(self.keeps)
        return counts

    @property
    def changes(self) -> pd.DataFrame:
        """One row per changed field, and one per listener kept.

        Columns: account_name, service_name, action (an ordered categorical: create, update,
        delete, keep), field, old, new. A password shows only as ``changed`` or ``unchanged``.
        """
        rows: list[tuple[str, ...]] = []
        for step in self.steps:
            rows += [(step.account_name, step.service_name, step.action, *cells) for cells in _fields(step)]
        rows += [(a, s, "keep", "", "", "") for a, s in self.keeps]
        table = frame(rows, CHANGE_COLUMNS)
        table["action"] = table["action"].astype(categories(ACTIONS, ordered=True))
        return table.sort_values(["action", "account_name", "service_name"], kind="stable").reset_index(drop=True)

    @property
    def errors(self) -> pd.DataFrame:
        """One row per account that could not be read, or listener that cannot be planned, with why."""
        import pandas as pd

        rows = [(e.account_name, e.error, e.status_code, e.error_code, e.message) for e in self.error_list]
        table = frame(rows, ERROR_COLUMNS)
        table["status_code"] = pd.array([e.status_code for e in self.error_list], dtype="Int64")
        return table

    def __repr__(self) -> str:
        return plan_text(self)

    def _repr_html_(self) -> str:
        return plan_html(self)

    # -- carrying it out --------------------------------------------------------------------

    async def aapply(
        self,
        *,
        concurrency: int = 8,
        journal: str | os.PathLike[str] | Journal | None = None,
        progress: bool | None = None,
        max_age: float = MAX_PLAN_AGE,
        on_progress: Callable[[int, int], None] | None = None,
        lock_wait: float = LOCK_WAIT,
        on_wait: Callable[[str, Holder | None], None] | None = None,
    ) -> ApplyResult:
        """Carry the plan out, each step journaled before it is sent and after its outcome is known.

        A plan older than ``max_age`` seconds is refused (:class:`StalePlanError`): make a new
        one, since ThingSpace may hold something else by now. Compare, then change: just before
        an account's steps, one fresh listing of it must show each listener as the plan saw it
        (URL, username, password fingerprint; none for a create), else that step is not sent and
        its outcome is ``changed-since-plan`` (plan again), or ``unchecked`` when no listing could
        show it for certain. After a crash, plan again and
        apply: the new plan is made from the live state, so steps that took effect are not
        repeated, and steps the journal shows unfinished are closed with what the live state says.

        Args:
            concurrency: Most accounts changed at once (1 to 256); an account's steps run one
                after another, each checked against a fresh listing of the account first.
            journal: The JSON Lines journal to append to; default a new file in tskit's config
                folder (``journals/``). It never holds a password, only fingerprints.
            progress: Show a progress bar: ``None`` in Jupyter or a terminal only.
            max_age: Oldest plan accepted, in seconds.
            on_progress: Called as ``on_progress(done, total)`` after each step.
            lock_wait: Longest wait, in seconds, for an account another apply or rotation holds
                (0: refuse at once). Under the accounts' locks, those with steps are read again:
                a step another run made already is not sent again (``confirmed``), one whose
                listener changed since the plan is not sent (``failed``: plan again).
            on_wait: Called with the account and its holder when it has to wait.

        Returns:
            An :class:`ApplyResult` with ``.outcomes`` and ``.journal``.

        A plan is used once: applying it again (re-running a cell, say) is refused with
        :class:`PlanUsedError`, and nothing is sent; plan again instead.

        Raises:
            StalePlanError: The plan is older than ``max_age``; nothing was sent.
            PlanUsedError: The plan was already applied; nothing was sent.
            JournalError: The journal cannot be written, or another apply holds it.
            AccountLockedError: Another apply or rotation held an account longer than ``lock_wait``.
        """
        return await apply_plan(
            self.client,
            self,
            concurrency=concurrency,
            journal=journal,
            progress=progress,
            max_age=max_age,
            on_progress=on_progress,
            lock_wait=lock_wait,
            on_wait=on_wait,
        )

    apply = blocking(aapply)


def _fields(step: Step) -> list[tuple[str, str, str]]:
    """The (field, old, new) rows of a step; passwords only as changed or unchanged."""
    old = step.old or Live("", "", "")
    if step.action == "delete":
        return [("url", old.url, "")]
    rows = []
    if step.action == "create" or old.url != step.url:
        rows.append(("url", old.url, step.url))
    if old.username != step.username:
        rows.append(("username", old.username, step.username))
    same = old.fingerprint == step.fingerprint
    if not same or (step.action == "update" and old.fingerprint):
        new = "unchanged" if same else "changed" if step.fingerprint else "removed"
        rows.append(("password", MASK if old.fingerprint else "", new))
    return rows


def compute_plan(
    client: ThingSpaceClient,
    desired: DesiredState,
    found: Mapping[str, Listing],
    failed: Mapping[str, ThingSpaceError],
    *,
    key: bytes,
    prune: bool,
    source: str,
) -> Plan:
    """The plan from a desired state and the certain listings read; no I/O.

    An account not in ``found`` (unreadable, or its listings uncertain) gets no step, so an
    uncertain read never plans a delete.
    """
    steps: list[Step] = []
    keeps: list[tuple[str, str]] = []
    errors = [AccountError.from_exception(name, failed[name]) for name in desired.accounts if name in failed]
    live: dict[str, dict[str, Live]] = {}
    for account, services in desired.accounts.items():
        if account not in found:
            continue
        current = {c.service_name: c for c in found[account].callbacks}
        live[account] = {name: live_of(key, c) for name, c in current.items()}
        for service, wanted in services.items():
            now = current.get(service)
            old = live[account].get(service)
            if wanted.fingerprint is None:
                password = wanted.password
                print_ = fingerprint(key, account, service, password.reveal())
            elif old is not None and now is not None and old.fingerprint == wanted.fingerprint:
                password, print_ = now.password, old.fingerprint  # keep the password it has
            else:
                errors.append(
                    AccountError(
                        account,
                        "PasswordUnknown",
                        None,
                        "",
                        f"{service}: the password is given by a fingerprint that the live listener does not "
                        "match (changed since the export?); give it as {env = ...}",
                    )
                )
                continue
            if old is None:
                steps.append(Step(account, service, "create", wanted.url, wanted.username, password, print_, None))
            elif old != Live(wanted.url, wanted.username, print_):
                steps.append(Step(account, service, "update", wanted.url, wanted.username, password, print_, old))
            else:
                keeps.append((account, service))
        for service, old in live[account].items():
            if service in services:
                continue
            if prune:
                steps.append(Step(account, service, "delete", old.url, old.username, Secret(""), "", old))
            # services not named are left alone, and not listed as kept
    steps.sort(key=lambda s: (ACTIONS.index(s.action), s.account_name, s.service_name))
    return Plan(
        client=client,
        desired=desired,
        prune=prune,
        steps=steps,
        keeps=keeps,
        live=live,
        errors=errors,
        key=key,
        source=source,
    )


def as_desired(
    desired: DesiredState | Mapping[str, Any] | str | os.PathLike[str],
    *,
    allow_any_port: bool = False,
    allow_unknown_service: bool = False,
) -> DesiredState:
    """A desired state from a state, a mapping, or the path of a TOML file."""
    if isinstance(desired, DesiredState):
        return desired
    if isinstance(desired, str | os.PathLike):
        return DesiredState.load(desired)
    return DesiredState.from_mapping(
        desired, allow_any_port=allow_any_port, allow_unknown_service=allow_unknown_service
    )


async def make_plan(
    client: ThingSpaceClient,
    desired: DesiredState | Mapping[str, Any] | str | os.PathLike[str],
    *,
    prune: bool = False,
    concurrency: int = 16,
    progress: bool | None = None,
    fingerprint_key: bytes | str | None = None,
    source: str = "",
    on_progress: Callable[[int, int], None] | None = None,
) -> Plan:
    """Read the accounts a desired state names (the audit's fan-out) and plan the changes."""
    state = as_desired(desired)
    key = load_key(fingerprint_key)
    if state.key_id is not None and state.key_id != key_id(key):
        raise ValidationError(
            f"{state.source}: [tskit] fingerprint_key_id",
            f"the fingerprints were made with key {state.key_id}, this machine's key is {key_id(key)}",
            "set TSKIT_FINGERPRINT_KEY to the key used for the export, or give passwords as {env = ...}",
        )
    if not state.accounts:
        raise ValidationError(f"{state.source}: desired state", "names no account", "one table per account")
    for account, service, wanted in state:  # nothing is read before every listener's credentials are allowed
        try:
            client.check_listener_credentials(wanted.username, wanted.password.reveal())
        except ValidationError as error:
            raise error.renamed(f"{state.source}: [{account}.{service}] {error.field}") from None
    found, failed = await read_accounts(
        client,
        list(state.accounts),
        concurrency=concurrency,
        progress=progress,
        description="Planning",
        on_progress=on_progress,
        read_again=True,
    )
    return compute_plan(client, state, found, failed, key=key, prune=prune, source=source or client.base_url)
