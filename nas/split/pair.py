"""The two devices of a split and the arch to split, as the commands name them.

:func:`load_pair` loads an edge and a cloud device profile of one workspace and refuses a
pair profiled on different spaces (a split runs one network across both); :func:`resolve_arch`
reads the arch from ``--arch`` (``min``, ``max``, JSON or a file) or a registered model.

Example::

    pair = load_pair(Workspace.resolve(), "pi", "server")
    arch = resolve_arch(pair.space, arch="max")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nas.errors import EdgenasError
from nas.workspace import Workspace


@dataclass
class DevicePair:
    """An edge and a cloud device of one space, with their fitted predictors."""

    space: Any
    edge: Any
    cloud: Any


def load_pair(workspace: Workspace, edge: str, cloud: str, space: Any = None) -> DevicePair:
    """Both devices' cost models; the space is the one they were profiled on (or ``space``,
    which both profiles must describe)."""
    from search_spaces import space_from_description

    profiles = {role: workspace.load_profile(name) for role, name in (("edge", edge), ("cloud", cloud))}
    if profiles["edge"].space != profiles["cloud"].space:
        raise EdgenasError(
            f"--edge {edge} was profiled on space {_short(profiles['edge'].space)} and --cloud {cloud} on "
            f"{_short(profiles['cloud'].space)}{' (other settings)' if _short(profiles['edge'].space) == _short(profiles['cloud'].space) else ''}: "
            "a split runs one network on both, so profile both on the same space")
    if space is None:
        try:
            space = space_from_description(profiles["edge"].space)
        except (KeyError, TypeError, ValueError) as exc:
            raise EdgenasError(f"device {edge!r}: its space cannot be built here ({exc})") from None
    return DevicePair(space, workspace.cost_model(edge, space), workspace.cost_model(cloud, space))


def resolve_arch(space: Any, arch: str | None = None, model: str | None = None,
                 workspace: Workspace | None = None) -> Any:
    """The arch of ``--arch`` (``min``, ``max``, ``random:1``, JSON or a JSON file) or of the
    registered ``--model`` (whose space must be the devices' space)."""
    from nas.spaces import parse_arch_specs

    if (arch is None) == (model is None):
        raise EdgenasError("give either --arch ARCH (min, max, JSON or a file) or --model NAME[:vN] (registered)")
    if arch is not None:
        found = parse_arch_specs(space, [arch])
        if len(found) != 1:
            raise EdgenasError(f"--arch {arch}: names {len(found)} archs; give one")
        return found[0]
    entry = (workspace or Workspace.resolve()).registry(create=False).get(model)
    if entry.space != space.describe():
        raise EdgenasError(f"--model {model} is a model of space {_short(entry.space)}, not of the devices' space "
                           f"{_short(space.describe())}; pick devices profiled on its space")
    try:
        return space.arch_from_json(entry.arch)
    except (ValueError, KeyError, TypeError) as exc:
        raise EdgenasError(f"--model {model}: its arch does not parse ({exc})") from None


def _short(description: dict[str, Any]) -> str:
    """``mbv3/small``, ``nb201``...: a space description's name and preset."""
    name = str(description.get("name", "?"))
    return f"{name}/{description['preset']}" if description.get("preset") else name


__all__ = ["DevicePair", "load_pair", "resolve_arch"]
