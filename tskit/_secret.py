"""A string wrapper that keeps secrets out of reprs, f-strings, logs and DataFrames."""

from __future__ import annotations

import hmac
from typing import Final

MASK: Final = "********"


class Secret:
    """A secret value that prints as a fixed mask.

    The value is only reachable through :meth:`reveal`, so that it can be passed on to
    ThingSpace but never shown by accident: ``repr``, ``str`` and ``format`` all give the mask.

    Examples:
        >>> s = Secret("s3cret")
        >>> s
        Secret('********')
        >>> s.reveal()
        's3cret'
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError(f"a secret must be a string, not {type(value).__name__}")
        self._value: str = value

    def reveal(self) -> str:
        """Return the secret value itself."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return f"Secret({MASK!r})" if self._value else "Secret('')"

    def __str__(self) -> str:
        return MASK if self._value else ""

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            other = other._value
        if not isinstance(other, str):
            return NotImplemented
        # Constant time, so a listener comparing passwords leaks nothing through timing.
        return hmac.compare_digest(self._value.encode(), other.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __copy__(self) -> Secret:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, object]) -> Secret:
        return self

    def __reduce__(self) -> tuple[object, ...]:
        # Refuse pickling: a pickle is a file we would write with the secret in it.
        raise TypeError("tskit.Secret values cannot be pickled")


def reveal(value: Secret | str | None) -> str:
    """Return the plain text of a secret, a string, or ``""`` for ``None``."""
    if value is None:
        return ""
    return value.reveal() if isinstance(value, Secret) else value
