"""Registry of search spaces: ``@register_space("name")`` and ``get_space(name, **kwargs)``.

A space is registered as a factory (usually its class); ``get_space`` calls it with the
keyword arguments given, so presets and sizes are chosen at construction, never by
looking up magic strings later.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from search_spaces._base import SearchSpace

_SPACES: dict[str, Callable[..., SearchSpace]] = {}

F = TypeVar("F", bound=Callable[..., SearchSpace])


def register_space(name: str) -> Callable[[F], F]:
    """Register a search-space factory under ``name`` (re-registering warns and replaces)."""

    def decorator(factory: F) -> F:
        if name in _SPACES and _SPACES[name] is not factory:
            warnings.warn(f"search space {name!r} registered twice; the later one wins", stacklevel=2)
        _SPACES[name] = factory
        return factory

    return decorator


def get_space(name: str, **kwargs: Any) -> SearchSpace:
    """Build the registered space ``name`` with ``kwargs`` (e.g. ``preset="small"``)."""
    try:
        factory = _SPACES[name]
    except KeyError:
        known = ", ".join(sorted(_SPACES)) or "none"
        raise KeyError(f"unknown search space {name!r}; known spaces: {known}") from None
    return factory(**kwargs)


def space_from_description(description: dict[str, Any]) -> SearchSpace:
    """Rebuild a space from its ``describe()`` output (stored in checkpoints and registries).

    The description's keys other than ``name`` are the constructor's keyword arguments; a
    nested ``config`` mapping (mbv3) is spread into them.
    """
    kwargs = {k: v for k, v in description.items() if k != "name"}
    kwargs.update(kwargs.pop("config", None) or {})
    return get_space(description["name"], **kwargs)


def list_spaces() -> list[str]:
    """Names of all registered spaces, sorted."""
    return sorted(_SPACES)
