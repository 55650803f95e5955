"""When and how long to wait before trying a failed call again."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a client retries calls that failed for a passing reason.

    Listing is always safe to retry. Register and deregister are retried only when the request
    cannot have reached ThingSpace (connection refused, 429), or after a fresh listing shows the
    change did not happen; when the listing shows it did, the call succeeds without a resend.
    Refused logins are never retried (see :class:`~tskit.AuthenticationError`).

    Attributes:
        attempts: Tries per call, the first included; ``1`` turns retrying off.
        backoff: Seconds to wait before the second try; doubled for each later one, with jitter.
        max_backoff: Longest wait between tries when the server gives no ``Retry-After``.
        max_retry_after: Longest ``Retry-After`` honoured; a longer one ends the call at once.
        statuses: HTTP statuses worth another try.
    """

    attempts: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0
    statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 500, 502, 503, 504}))

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if min(self.backoff, self.max_backoff, self.max_retry_after) < 0:
            raise ValueError("waits cannot be negative")

    def delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait after failed try number ``attempt``, or ``None`` to give up."""
        if attempt >= self.attempts:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        base = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return base * (0.5 + random.random() / 2)  # jitter, so many clients do not retry in step


NO_RETRY = RetryPolicy(attempts=1)
