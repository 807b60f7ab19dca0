"""The project's own error types: what the CLI turns into a one-line message and exit code 2.

:class:`EdgenasError` is raised by ``nas`` for a problem the user can fix; its message
names what is wrong and how to fix it. ``latency_predictors`` has its own
(:class:`~latency_predictors.errors.PredictorsError` and its subclasses), since it cannot
import ``nas``. :data:`USER_ERRORS` is both: anything else that escapes a command is a bug.
"""

from __future__ import annotations

from latency_predictors.errors import PredictorsError


class EdgenasError(Exception):
    """A user-facing problem: the message names what is wrong and how to fix it."""


USER_ERRORS: tuple[type[Exception], ...] = (EdgenasError, PredictorsError)
"""Exception types whose message is shown to the user as is (one line, exit code 2)."""

__all__ = ["USER_ERRORS", "EdgenasError"]
