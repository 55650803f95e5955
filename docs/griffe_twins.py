"""A griffe extension: tskit's generated blocking twins (``name = blocking(aname)``) documented as methods.

griffe reads the source without running it, so a twin would show as an attribute without a
docstring. This gives it what the running twin has: the async operation's parameters and
return, and the docstring :func:`tskit._runtime.twin_docstring` makes.
"""

from __future__ import annotations

import ast
from typing import Any

import griffe

from tskit._runtime import twin_docstring


class BlockingTwins(griffe.Extension):
    """Turn each ``name = blocking(aname)`` of a class into the method it is at run time."""

    def on_class_members(self, *, node: ast.AST | griffe.ObjectNode, cls: griffe.Class, **kwargs: Any) -> None:
        """Replace the twins of ``cls``, once griffe has read its members."""
        for name, member in list(cls.members.items()):
            if not isinstance(member, griffe.Attribute):
                continue
            value = str(member.value or "")
            if not (value.startswith("blocking(") and value.endswith(")")):
                continue
            operation = cls.members.get(value.removeprefix("blocking(").removesuffix(")"))
            if not isinstance(operation, griffe.Function):
                continue
            twin = griffe.Function(
                name,
                lineno=member.lineno,
                endlineno=member.endlineno,
                parameters=operation.parameters,
                returns=operation.returns,
            )
            doc = operation.docstring.value if operation.docstring else None
            twin.docstring = griffe.Docstring(twin_docstring(doc, operation.name), lineno=member.lineno, parent=twin)
            twin.labels = set(operation.labels) - {"async"}
            cls.set_member(name, twin)
