"""Carrying a plan out: steps sent through the client's truthful mutations, each one journaled."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from tskit._errors import ApiError, RateLimitError, ThingSpaceError, UncertainListingError
from tskit._models import CallbackActionResult
from tskit._secret import Secret
from tskit.audit import check_concurrency
from tskit.audit._progress import progress_bar
from tskit.state._journal import Journal, default_path
from tskit.state._plan import Live, Plan, Step, live_of
from tskit.state._read import read_all

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd

    from tskit._models import Listing

OUTCOME_COLUMNS: Final = ("account_name", "service_name", "action", "outcome", "reason")
#: A step not sent: a fresh listing shows its listener other than the plan saw it (plan again).
CHANGED: Final = "changed-since-plan"
#: A step not sent: no fresh listing could show its listener for certain (try again later).
UNCHECKED: Final = "unchecked"
#: Every outcome a step can have.
OUTCOMES: Final = ("done", "confirmed", "failed", CHANGED, UNCHECKED)
_NO_PASSWORD: Final = Secret("")  # a step read back from a journal, which holds no password


class StalePlanError(ThingSpaceError):
    """A plan too old to apply: ThingSpace may hold something else by now. Nothing was sent."""


class PlanUsedError(StalePlanError):
    """A plan already applied (re-running a cell, say): plan again. Nothing was sent."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one step.

    ``done``: ThingSpace said yes; ``confirmed``: its answer was lost and a listing showed the
    change; ``failed``: the reason says why. ``unknown``: a failure whose effect nobody saw (a lost
    answer): a later listing that shows the change makes it ``confirmed``. Not sent:
    ``changed-since-plan``: a listing just before it shows the listener other than the plan saw it
    (someone changed it since: plan again); ``unchecked``: no listing could show it for certain.
    """

    step: Step
    outcome: str
    reason: str = ""
    unknown: bool = False


class ApplyResult:
    """The outcome of every step of an apply, and the journal that recorded them.

    Attributes:
        plan: The plan applied.
        outcome_list: One :class:`Outcome` per step.
        journal: The journal (``.frame`` reads it back).
        resumed: Steps of an interrupted apply found in the journal, closed by this one.
    """

    def __init__(self, plan: Plan, outcomes: list[Outcome], journal: Journal, resumed: int, apply_id: str = "") -> None:
        self.apply_id = apply_id
        self.plan = plan
        self.outcome_list = outcomes
        self.journal = journal
        self.resumed = resumed

    @property
    def outcomes(self) -> pd.DataFrame:
        """One row per step: account_name, service_name, action, outcome, reason."""
        from tskit._frames import frame

        rows = [
            (o.step.account_name, o.step.service_name, o.step.action, o.outcome, o.reason) for o in self.outcome_list
        ]
        return frame(rows, OUTCOME_COLUMNS)

    @property
    def failed(self) -> list[Outcome]:
        """The steps that failed."""
        return [o for o in self.outcome_list if o.outcome == "failed"]

    @property
    def not_sent(self) -> list[Outcome]:
        """The steps not sent: ``changed-since-plan`` or ``unchecked``."""
        return [o for o in self.outcome_list if o.outcome in (CHANGED, UNCHECKED)]

    @property
    def changed_since_plan(self) -> list[Outcome]:
        """The steps not sent because their listener changed since the plan: plan again."""
        return [o for o in self.outcome_list if o.outcome == CHANGED]

    @property
    def ok(self) -> bool:
        """Whether every step took effect."""
        return not self.failed and not self.not_sent

    def counts(self) -> dict[str, int]:
        """How many steps per outcome (``done``, ``confirmed``, ``failed``; the others when there are some)."""
        counts = {k: sum(1 for o in self.outcome_list if o.outcome == k) for k in OUTCOMES}
        return {k: n for k, n in counts.items() if n or k in ("done", "confirmed", "failed")}

    def summary(self) -> str:
        """More to say on the first line of the text (none here)."""
        return ""

    def __repr__(self) -> str:
        from tskit.state._display import result_text

        return result_text(self)

    def _repr_html_(self) -> str:
        from tskit.state._display import result_html

        return result_html(self)


def outcome_of(result: CallbackActionResult) -> str:
    """``done`` or ``confirmed``, from what the client says of a mutation."""
    told = getattr(result, "outcome", None)  # "sent", "resent" or "confirmed", where the client tells
    if told is not None:
        return "confirmed" if told == "confirmed" else "done"
    return "confirmed" if result.confirmed_by_listing else "done"


#: Times a step is sent when a listing shows that a send with a lost answer did not take effect.
_SENDS: Final = 3


async def _mutate(plan: Plan, step: Step) -> CallbackActionResult:
    if step.action == "delete":
        return await plan.client.deregister_callback(step.account_name, step.service_name, allow_unknown_service=True)
    return await plan.client.register_callback(
        step.account_name,
        step.service_name,
        step.url,
        username=step.username or None,
        password=step.password.reveal() or None,
        allow_any_port=plan.desired.allow_any_port,
        allow_unknown_service=True,
    )


def _already_registered(exc: ApiError) -> bool:
    return "alreadyregistered" in exc.error_code.replace("_", "").casefold()


async def _send(plan: Plan, step: Step, note: Callable[[str], Awaitable[None]] | None = None) -> Outcome:
    """Send one step; when its answer was lost, look (password included) before calling it done.

    Where ThingSpace refuses to register a service again ("already registered": whether it replaces
    is not documented), the listener is deregistered, then registered, as this one step; ``note``
    journals that first, and the outcome's reason says so.
    """
    replacing = ""
    for _ in range(_SENDS):
        try:
            try:
                result = await _mutate(plan, step)
            except ApiError as exc:
                if step.action == "delete" or replacing or not _already_registered(exc):
                    raise
                replacing = f"ThingSpace refused to register it again ({exc.error_code}): deregistered it first"
                if note is not None:
                    await note(replacing)
                await plan.client.deregister_callback(step.account_name, step.service_name, allow_unknown_service=True)
                result = await _mutate(plan, step)
        except ThingSpaceError as exc:
            refused = isinstance(exc, ApiError) and exc.status_code < 500 and not isinstance(exc, RateLimitError)
            reason = f"{replacing}; then: {exc}" if replacing else str(exc)
            return Outcome(step, "failed", reason, unknown=not refused)  # no answer, or a 5xx: may have happened
        if outcome_of(result) == "done":
            return Outcome(step, "done", replacing)
        try:  # an absence (a deleted listener, one not registered yet) is confirmed by more listings
            listing = await plan.client.listing(step.account_name, expect=_absence_to_confirm([step]))
            if not listing.certain:
                raise UncertainListingError(step.account_name, listing.reason, listing.detail)
        except ThingSpaceError as exc:
            lost = f"the answer was lost and the outcome is unknown: {exc}"
            return Outcome(step, "failed", f"{replacing}; then: {lost}" if replacing else lost, unknown=True)
        now = listing.get(step.service_name)
        if step.took_effect(None if now is None else live_of(plan._key, now)):
            seen = "the answer was lost; a listing shows the change"
            return Outcome(step, "confirmed", f"{replacing}; {seen}" if replacing else seen)
        # Not in effect (a listing that ignores the password can mistake an unchanged listener
        # for a changed one): sending again cannot repeat a change that never happened.
    return Outcome(step, "failed", f"the answer was lost {_SENDS} times and the listing does not show the change")


def _absence_to_confirm(steps: list[Step]) -> set[str]:
    """The services whose absence a listing must confirm: those the steps saw, and those they delete."""
    return {s.service_name for s in steps if s.old is not None or s.action == "delete"}


def _shown(live: Live | None) -> str:
    if live is None:
        return "no listener"
    password = "a password" if live.fingerprint else "no password"
    return f"url {live.url}, username {live.username!r}, {password} (fingerprint {live.fingerprint[:12] or '-'})"


def changed_since_plan(plan: Plan, step: Step, listing: Listing) -> str:
    """``""`` when a certain listing shows the step's listener as the plan saw it, else what differs."""
    now = listing.get(step.service_name)
    seen = None if now is None else live_of(plan._key, now)
    if seen == step.old:
        return ""
    return f"not sent: the plan saw {_shown(step.old)}; a listing now shows {_shown(seen)}. Plan again"


async def _fresh_listing(plan: Plan, steps: list[Step]) -> tuple[Listing | None, str]:
    """One listing of an account just before its steps, or why none could show it for certain."""
    account = steps[0].account_name
    try:
        listing = await plan.client.listing(account, expect=_absence_to_confirm(steps))
    except ThingSpaceError as exc:
        return None, f"not sent: the account could not be listed to check it is as planned: {exc}"
    if not listing.certain:
        return None, f"not sent: the listings of the account are uncertain ({listing.reason}): {listing.detail}"
    return listing, ""


def reconcile(
    plan: Plan, book: Journal, apply_id: str, outcomes: list[Outcome], listed: Mapping[str, Listing]
) -> list[Outcome]:
    """``outcomes`` with each unknown failure that ``listed`` shows in effect made ``confirmed``.

    The journal is append-only: a second outcome line is written for such a step, and readers
    take a step's last outcome line.
    """
    reconciled = []
    for outcome in outcomes:
        step = outcome.step
        if outcome.outcome == "failed" and outcome.unknown and step.account_name in listed:
            now = listed[step.account_name].get(step.service_name)
            if step.took_effect(None if now is None else live_of(plan._key, now)):
                outcome = Outcome(step, "confirmed", f"{outcome.reason}; a later listing shows the change in effect")
                book.write("outcome", apply=apply_id, step=step.id, outcome=outcome.outcome, reason=outcome.reason)
        reconciled.append(outcome)
    return reconciled


def _close_unfinished(plan: Plan, journal: Journal, apply_id: str) -> int:
    """Close the steps an interrupted apply left open, with what the live state read by the plan says."""
    closed = 0
    for entry in journal.unfinished():
        account, service = entry["account_name"], entry["service_name"]
        if account not in plan.live:
            continue  # not read by this plan: left open for a plan that reads it
        step = Step(
            account,
            service,
            entry["action"],
            entry["url"],
            entry["username"],
            _NO_PASSWORD,
            entry["password_fingerprint"],
            None,
        )
        live: Live | None = plan.live[account].get(service)
        if step.took_effect(live):
            outcome, reason = "confirmed", f"interrupted; apply {apply_id} found the change in effect"
        else:
            outcome, reason = "failed", f"interrupted; not in effect when apply {apply_id} planned again"
        journal.write("outcome", apply=entry["apply"], step=entry["step"], outcome=outcome, reason=reason)
        closed += 1
    return closed


async def apply_plan(
    plan: Plan,
    *,
    concurrency: int = 8,
    journal: str | os.PathLike[str] | Journal | None = None,
    progress: bool | None = None,
    max_age: float = 300.0,
    on_progress: Callable[[int, int], None] | None = None,
) -> ApplyResult:
    """Carry out a plan's steps, at most ``concurrency`` at once; see :meth:`Plan.apply`."""
    check_concurrency(concurrency)
    if plan.age > max_age:
        raise StalePlanError(
            f"the plan is {_seconds(plan.age)} old (the most is {_seconds(max_age)}): ThingSpace may hold "
            "something else by now. Plan again, then apply the new plan; nothing was sent"
        )
    book = journal if isinstance(journal, Journal) else Journal.for_writing(journal or default_path())
    with book.hold():
        plan.mark_applied()
        return await _apply_held(plan, book, concurrency, progress, on_progress)


def _seconds(value: float) -> str:
    shown = f"{value:.0f}" if value >= 1 else f"{value:.1g}"
    return f"{shown} s"


async def _apply_held(
    plan: Plan,
    book: Journal,
    concurrency: int,
    progress: bool | None,
    on_progress: Callable[[int, int], None] | None,
) -> ApplyResult:
    """The apply itself, the journal held."""
    apply_id = f"{plan.id}-{secrets.token_hex(3)}"
    book.write(
        "apply",
        apply=apply_id,
        format="tskit-journal/1",
        source=plan.source,
        desired=plan.desired.source,
        prune=plan.prune,
        counts=plan.counts(),
    )
    resumed = await asyncio.to_thread(_close_unfinished, plan, book, apply_id)
    outcomes: list[Outcome] = []
    # Compare, then change: an account's steps run one after another (creates, updates, deletes),
    # just after one fresh listing of it shows each listener still as the plan saw it.
    accounts: dict[str, list[Step]] = {}
    for step in plan.steps:
        accounts.setdefault(step.account_name, []).append(step)
    queue: asyncio.Queue[list[Step]] = asyncio.Queue()
    for steps in accounts.values():
        queue.put_nowait(steps)
    bar = progress_bar(len(plan.steps), enabled=progress, description="Applying", unit="change")

    async def run(step: Step, listing: Listing | None, unchecked: str) -> Outcome:
        if listing is None:
            return Outcome(step, UNCHECKED, unchecked)
        changed = changed_since_plan(plan, step, listing)
        if changed:
            return Outcome(step, CHANGED, changed)

        async def note(reason: str) -> None:
            calls = ["deregister", "register"]
            await asyncio.to_thread(book.write, "calls", apply=apply_id, step=step.id, calls=calls, reason=reason)

        return await _send(plan, step, note)

    async def worker() -> None:
        while not queue.empty():
            steps = queue.get_nowait()
            listing, unchecked = await _fresh_listing(plan, steps)
            for step in steps:
                await asyncio.to_thread(book.write, "step", apply=apply_id, **step.record())
                outcome = await run(step, listing, unchecked)
                await asyncio.to_thread(
                    book.write, "outcome", apply=apply_id, step=step.id, outcome=outcome.outcome, reason=outcome.reason
                )
                outcomes.append(outcome)
                if bar is not None:
                    bar.update(1)
                if on_progress is not None:
                    on_progress(len(outcomes), len(plan.steps))

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(concurrency, len(accounts))):
                group.create_task(worker())
    finally:
        if bar is not None:
            bar.close()
    order = {id(s): i for i, s in enumerate(plan.steps)}
    outcomes.sort(key=lambda o: order[id(o.step)])
    unknown = sorted({o.step.account_name for o in outcomes if o.outcome == "failed" and o.unknown})
    if unknown:  # look once more: a change whose answer was lost may be in effect by now
        lost = [o.step for o in outcomes if o.outcome == "failed" and o.unknown]
        expect = {a: _absence_to_confirm([s for s in lost if s.account_name == a]) for a in unknown}
        listed, _ = await read_all(plan.client, unknown, progress=False, expect=expect)
        outcomes = await asyncio.to_thread(reconcile, plan, book, apply_id, outcomes, listed)
    return ApplyResult(plan, outcomes, book, resumed, apply_id)
