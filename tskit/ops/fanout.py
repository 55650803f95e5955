"""The fan-out: many accounts read at once, at most ``concurrency`` at a time, with a progress bar.

What could not be read is kept as data (:class:`AccountError`), one per account, never as an
empty listing.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import traceback
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from tskit._errors import (
    ApiError,
    AuthenticationError,
    ThingSpaceError,
    TransportError,
    UncertainListingError,
    scrub,
)
from tskit._models import Callback, Listing
from tskit.ops.accounts import check_concurrency
from tskit.ops.progress import progress_bar

if TYPE_CHECKING:
    from tskit._client import ThingSpaceClient

logger = logging.getLogger("tskit")

#: The columns of a frame of :class:`AccountError`.
ERROR_COLUMNS: Final = ("account_name", "error", "status_code", "error_code", "message")

#: Passes over the accounts with ``read_again``: the client retries each call; accounts whose reads
#: still failed for a passing reason (5xx, 429, a dropped connection) are read again, after a pause.
READ_PASSES: Final = 3


@dataclass(frozen=True, slots=True)
class AccountError:
    """An account that could not be read, and why."""

    account_name: str
    error: str
    status_code: int | None
    error_code: str
    message: str

    @classmethod
    def from_exception(cls, account_name: str, exc: ThingSpaceError) -> AccountError:
        """Describe a failed read."""
        # The client scrubbed these texts already; scrubbing again keeps a password that slipped
        # through (e.g. one no client knew) out of audit.errors, reprs and snapshots.
        if isinstance(exc, ApiError):
            # tskit's own errors about an answer (a login not sent, say) have no server message:
            # their whole text says what happened and what to do.
            code, message = scrub(exc.error_code), scrub(exc.error_message or str(exc))
            return cls(account_name, type(exc).__name__, exc.status_code, code, message)
        if isinstance(exc, UncertainListingError):  # read, but not for certain: its reason is the code
            return cls(account_name, type(exc).__name__, None, exc.reason, scrub(exc.detail))
        return cls(account_name, type(exc).__name__, None, "", scrub(str(exc)))


async def read_accounts(
    client: ThingSpaceClient,
    names: Sequence[str],
    *,
    concurrency: int = 16,
    progress: bool | None = None,
    description: str = "Reading",
    on_progress: Callable[[int, int], None] | None = None,
    on_read: Callable[[str, list[Callback]], None] | None = None,
    expect: Collection[str] | Mapping[str, Collection[str]] = (),
    confirm_all: bool = False,
    read_again: bool = False,
) -> tuple[dict[str, Listing], dict[str, ThingSpaceError]]:
    """Read the callbacks of many accounts, at most ``concurrency`` at once, with a progress bar.

    Each account is read with :meth:`ThingSpaceClient.listing <tskit.ThingSpaceClient.listing>`
    (``expect``: services whose absence must be confirmed, for every account or per account;
    ``confirm_all``: confirm every answer). An account whose listings are uncertain is returned
    among the failures, as an :class:`~tskit.UncertainListingError` with its reason: never as
    "no listeners". One account's failure never stops the others: it is returned with the error it gave.
    ``on_read(name, callbacks)`` is called for each account as soon as it is read, so that work
    on it (an audit's rules) is done while the other reads wait on the network, not after the
    last one; if it raises, reading stops and its exception is raised as it is.

    With ``read_again``, the accounts whose reads failed for a passing reason (what the client's
    retry policy retries, and uncertain listings) are read again (reads change nothing), in at
    most :data:`READ_PASSES` passes, without a progress bar; one pass when the client's policy
    does not retry (``attempts=1``). An account still failing is among the failures, with its
    last error.

    Returns:
        The certain listing of each account read, and the error of each account that could not be.
    """
    check_concurrency(concurrency)
    found: dict[str, Listing] = {}
    failed: dict[str, ThingSpaceError] = {}
    queue: asyncio.Queue[str] = asyncio.Queue()
    for name in names:
        queue.put_nowait(name)
    bar = progress_bar(len(names), enabled=progress, description=description)
    stopped: list[BaseException] = []

    async def worker() -> None:
        while not queue.empty() and not stopped:
            name = queue.get_nowait()
            wanted = expect.get(name, ()) if isinstance(expect, Mapping) else expect
            try:
                listing = await client.listing(name, expect=wanted, confirm_all=confirm_all)
                if not listing.certain:
                    raise UncertainListingError(name, listing.reason, listing.detail)
                found[name] = listing
            except ThingSpaceError as exc:  # one account's failure never stops the others
                failed[name] = exc
            except Exception as exc:  # a tskit bug too: keep the others; its text may hold a secret
                _log_unexpected(name, exc)
                failed[name] = ThingSpaceError(f"reading it failed unexpectedly ({type(exc).__name__})")
            else:
                if on_read is not None:
                    if stopped:
                        return
                    try:
                        on_read(name, list(listing.callbacks))
                    except Exception as exc:  # the caller's error (a rule's bug): stop, and raise it as it is
                        stopped.append(exc)
                        raise _Stopped from None  # the task group cancels the reads in flight
            if bar is not None:
                bar.update(1)
            if on_progress is not None:
                on_progress(len(found) + len(failed), len(names))

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(concurrency, len(names))):
                group.create_task(worker())
    except* _Stopped:
        pass  # raised below, as it is, outside the group's ExceptionGroup
    finally:
        if bar is not None:
            bar.close()
    if stopped:
        raise stopped[0]
    if read_again:  # the same reads, of fewer accounts, without a bar
        read = functools.partial(
            read_accounts,
            client,
            concurrency=concurrency,
            progress=False,
            on_read=on_read,
            expect=expect,
            confirm_all=confirm_all,
        )
        await _read_passing_again(client, names, found, failed, read)
    return found, failed


async def _read_passing_again(
    client: ThingSpaceClient,
    names: Sequence[str],
    found: dict[str, Listing],
    failed: dict[str, ThingSpaceError],
    read: Callable[[Sequence[str]], Awaitable[tuple[dict[str, Listing], dict[str, ThingSpaceError]]]],
) -> None:
    """Read again the accounts of ``failed`` that failed for a passing reason; ``found`` and ``failed`` updated."""
    passes = READ_PASSES if client.retry.attempts > 1 else 1
    for attempt in range(1, passes):
        again = [name for name in names if name in failed and _passing(client, failed[name])]
        if not again:
            break
        retry_after = max((getattr(failed[n], "retry_after", None) or 0.0) for n in again) or None
        await asyncio.sleep(client.retry.delay(attempt, retry_after) or client.retry.backoff)
        more, still = await read(again)
        for name in again:
            failed.pop(name)
        found.update(more)
        failed.update(still)


def _passing(client: ThingSpaceClient, error: ThingSpaceError) -> bool:
    """Whether a failed read is worth another pass: what the client's retry policy retries, and uncertain listings."""
    if isinstance(error, UncertainListingError):
        return True
    if isinstance(error, AuthenticationError):
        return False
    if isinstance(error, ApiError):
        return error.status_code in client.retry.statuses
    return isinstance(error, TransportError)


def _log_unexpected(name: str, exc: Exception) -> None:
    """Log where an unexpected error arose: its type and traceback, not its text (it may hold a secret)."""
    where = "".join(traceback.format_tb(exc.__traceback__))
    logger.error("reading %s failed unexpectedly (%s); traceback:\n%s", name, type(exc).__qualname__, where)


class _Stopped(Exception):
    """A worker's ``on_read`` raised: the task group cancels the others."""
