"""A griffe extension: the code's reStructuredText inline markup, as Markdown, on the API page.

Docstrings in this project are prose with a little reStructuredText: roles such as
``:class:`~nas.adapt.decomposition.Decomposition``` and literal-block introductions such
as ``Example::``. mkdocstrings renders docstrings as Markdown, where both would show
verbatim. This turns a role into inline code (``~`` keeps the last name, as in Sphinx) and
``::`` at the end of a line into ``:`` (the indented block after it is a code block in
Markdown too). It changes only what the documentation shows, never the code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|attr|data|mod|exc|obj):`(~?)([^`]+)`")
LITERAL_INTRO = re.compile(r"(?<=\S)::[ \t]*$", re.MULTILINE)


def to_markdown(text: str) -> str:
    """``text`` with reStructuredText roles as inline code and ``::`` line ends as ``:``."""
    def role(match: re.Match[str]) -> str:
        tilde, target = match.groups()
        return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"

    return LITERAL_INTRO.sub(":", ROLE.sub(role, text))


class RstInline(griffe.Extension):
    """Rewrite every docstring as it is loaded (see the module docstring)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
