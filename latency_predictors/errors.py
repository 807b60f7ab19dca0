"""The exception a profiling run raises when the device, not the caller's input, is the problem.

Bad input (a malformed target, a CSV with missing columns) is a ``ValueError``. A device
that cannot be reached, refuses a key or stops answering mid-profile is a
:class:`ProfilingError`; its one-line message names the problem and what to do, and
every measurement taken before it stays in the store.
"""

from __future__ import annotations


class ProfilingError(RuntimeError):
    """The device could not be reached or stopped answering (measurements so far are kept)."""


class ProfileExistsError(ValueError):
    """A profile of that name exists and would be replaced (or belongs to another space).

    A ``ValueError`` (bad input: exit code 2 at the CLI); its message says how the existing
    profile was made and how to replace it on purpose.
    """
