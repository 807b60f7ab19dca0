"""The exceptions ``latency_predictors`` raises for problems a user can fix.

Every one of them carries a one-line message that names the problem and what to do;
``edgenas`` prints it as is. They share the base :class:`PredictorsError`:

- :class:`InputError` (also a ``ValueError``): bad input, such as a malformed target or a
  CSV with missing columns.
- :class:`ProfilingError` (also a ``RuntimeError``): the device cannot be reached, refuses
  a key or stops answering mid-profile; every measurement taken before it stays stored.
- :class:`DatabaseError` (also a ``RuntimeError``): a database URL that cannot be opened
  or a server that cannot be reached.

Anything else raised from this package is a bug, not a user error.
"""

from __future__ import annotations


class PredictorsError(Exception):
    """Base of the user-facing errors of ``latency_predictors``."""


class InputError(PredictorsError, ValueError):
    """Bad input: the message names the argument, file or row and the fix."""


class ProfilingError(PredictorsError, RuntimeError):
    """The device could not be reached or stopped answering (measurements so far are kept)."""


class DatabaseError(PredictorsError, RuntimeError):
    """A database URL that cannot be opened, or a server that does not answer."""


class ProfileExistsError(InputError):
    """A profile of that name exists and would be replaced (or belongs to another space); the
    message says how the existing profile was made and how to replace it on purpose."""


__all__ = ["DatabaseError", "InputError", "PredictorsError", "ProfileExistsError", "ProfilingError"]
