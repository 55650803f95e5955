"""What storing a message can come to: its row and arrival count, or why it was not stored."""

from __future__ import annotations

from dataclasses import dataclass

from tskit._errors import Reason


@dataclass(frozen=True, slots=True)
class Stored:
    """The outcome of storing one message: its row id and how many times it has arrived."""

    id: int
    attempts: int

    @property
    def duplicate(self) -> bool:
        """Whether this arrival was a redelivery of a stored message."""
        return self.attempts > 1


class MessageRefused(ValueError):
    """This message cannot be stored (the listener answers 400); other messages are not affected."""

    reason: str = Reason.MESSAGE_REFUSED


class StoreUnavailable(RuntimeError):
    """The store cannot write now (the listener answers 503, so ThingSpace sends again)."""

    reason: str = Reason.STORE_UNAVAILABLE


class StoreOpenError(OSError):
    """The store's file cannot be opened or created (the message names the file and why)."""

    reason: str = Reason.STORE_UNOPENED


class StoreFailed(StoreUnavailable):
    """The store's writer cannot go on; every call fails at once until a new store is opened."""

    reason: str = Reason.STORE_FAILED
