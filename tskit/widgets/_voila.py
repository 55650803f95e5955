"""Whether this kernel runs a Voilà app, so a notebook's checks can stay out of the app."""

from __future__ import annotations

import os


def in_voila() -> bool:
    """Whether the notebook runs as a Voilà app rather than in Jupyter or under nbval.

    Voilà starts each app's kernel with ``SERVER_SOFTWARE=voila/<version>`` (and sets
    ``VOILA_KERNEL_ID`` in it). The notebooks wrap their check cells in ``if not in_voila():``
    so the checks run under nbval and in JupyterLab but neither run nor show in the app.
    """
    return os.environ.get("SERVER_SOFTWARE", "").startswith("voila/") or "VOILA_KERNEL_ID" in os.environ
