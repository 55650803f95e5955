"""Optional parts of tskit and the extra that installs each: one message when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Final

EXTRAS: Final = {
    "server": "the callback listener and the simulator served over HTTP",
    "widgets": "the notebook widgets",
}


class MissingExtraError(ImportError):
    """A part of tskit was used whose optional dependencies are not installed; names the extra."""


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, or say which extra of ``thingspace-tskit`` installs it.

    Raises:
        MissingExtraError: The module is not installed.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] != module.split(".")[0]:
            raise  # something else inside the module is missing: not ours to explain
        raise MissingExtraError(
            f"{EXTRAS[extra]} need {module.split('.')[0]}, which is not installed: "
            f"pip install 'thingspace-tskit[{extra}]'",
            name=module,
        ) from None
