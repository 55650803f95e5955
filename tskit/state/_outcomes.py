"""The outcomes a step of an apply can end with: what the result, the journal and the CLI all say."""

from __future__ import annotations

from typing import Final

#: ThingSpace said yes.
DONE: Final = "done"
#: Its answer was lost and a listing showed the change (or it was already in effect: not sent).
CONFIRMED: Final = "confirmed"
#: The reason says why; it may or may not have taken effect when the answer was lost.
FAILED: Final = "failed"
#: Not sent: a listing just before it shows its listener other than the plan saw it (plan again).
CHANGED: Final = "changed-since-plan"
#: Not sent: no listing could show its account for certain just before it (try again later).
UNCHECKED: Final = "unchecked"
#: Every outcome a step can have, in the order results count them.
OUTCOMES: Final = (DONE, CONFIRMED, FAILED, CHANGED, UNCHECKED)
