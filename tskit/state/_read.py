"""Reading many accounts for a plan, an export or a rotation, with passing failures read again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Final

from tskit._errors import ApiError, AuthenticationError, ThingSpaceError, TransportError, UncertainListingError
from tskit.ops import read_accounts

if TYPE_CHECKING:
    from tskit._client import ThingSpaceClient
    from tskit._models import Listing

#: Passes over the accounts: the client retries each call; accounts whose reads still failed
#: for a passing reason (5xx, 429, a dropped connection) are read again, after a pause.
READ_PASSES: Final = 3


def passing(client: ThingSpaceClient, error: ThingSpaceError) -> bool:
    """Whether a failed read is worth another pass: what the client's retry policy retries, and uncertain listings."""
    if isinstance(error, UncertainListingError):
        return True
    if isinstance(error, AuthenticationError):
        return False
    if isinstance(error, ApiError):
        return error.status_code in client.retry.statuses
    return isinstance(error, TransportError)


async def read_all(
    client: ThingSpaceClient,
    names: Sequence[str],
    *,
    concurrency: int = 16,
    progress: bool | None = None,
    description: str = "Reading",
    on_progress: Callable[[int, int], None] | None = None,
    expect: Collection[str] | Mapping[str, Collection[str]] = (),
    confirm_all: bool = False,
) -> tuple[dict[str, Listing], dict[str, ThingSpaceError]]:
    """:func:`tskit.audit.read_accounts`, then passing failures read again (reads change nothing).

    Only certain listings are returned as read; an account still uncertain after the passes is
    among the failures (:class:`~tskit.UncertainListingError`), so no caller takes it as empty.

    With retries turned off in the client's policy (``attempts=1``), there is one pass only.
    """
    found, failed = await read_accounts(
        client,
        names,
        concurrency=concurrency,
        progress=progress,
        description=description,
        on_progress=on_progress,
        expect=expect,
        confirm_all=confirm_all,
    )
    passes = READ_PASSES if client.retry.attempts > 1 else 1
    for attempt in range(1, passes):
        again = [name for name in names if name in failed and passing(client, failed[name])]
        if not again:
            break
        retry_after = max((getattr(failed[n], "retry_after", None) or 0.0) for n in again) or None
        await asyncio.sleep(client.retry.delay(attempt, retry_after) or client.retry.backoff)
        more, still = await read_accounts(
            client, again, concurrency=concurrency, progress=False, expect=expect, confirm_all=confirm_all
        )
        for name in again:
            failed.pop(name)
        found.update(more)
        failed.update(still)
    return found, failed
