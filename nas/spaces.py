"""Search spaces as the commands name them, and archs as users write them.

:func:`build_space` is the one way ``nas`` builds a space from a name (with a default
preset per space: ``mbv3`` means its CPU-sized ``small`` preset unless told otherwise) and
turns the registry's errors into one-line messages. :func:`parse_arch_specs` reads the
``min`` / ``max`` / ``random:N`` / JSON / file forms ``edgenas eval --arch`` takes, and
:func:`read_arch_file` a file of archs (one per line, or a CSV with an ``arch`` column).

Example::

    space = build_space("mbv3")                       # preset small
    archs = parse_arch_specs(space, ["min", "random:3"], seed=0)
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas.errors import EdgenasError

DEFAULT_PRESETS = {"mbv3": "small"}
"""The preset a space gets when none is named (the one a CPU quickstart profiles)."""


def build_space(name: str, options: dict[str, Any] | None = None, *, preset: str | None = None,
                name_key: str = "--space", options_key: str = "--space") -> Any:
    """``get_space(name, **options)``; ``preset`` is added to ``options`` when given. A space
    named without options (``--space mbv3``) gets its :data:`DEFAULT_PRESETS` entry; options
    given (a training config, a checkpoint) are used as they are.

    ``name_key`` and ``options_key`` name the flag or config key in error messages
    (``space.name`` / ``space.options`` for a training config).
    """
    from search_spaces import get_space

    chosen = preset or (DEFAULT_PRESETS.get(name) if options is None else None)
    options = dict(options or {})
    if chosen:
        options["preset"] = chosen
    try:
        return get_space(name, **options)
    except KeyError as exc:
        raise EdgenasError(f"{name_key}: {exc.args[0]}") from None
    except (TypeError, ValueError) as exc:
        raise EdgenasError(f"{options_key}: {exc}") from None


def parse_arch_specs(space: Any, specs: Sequence[str], seed: int = 0) -> list[Any]:
    """Archs from ``min``, ``max``, ``random:N``, inline JSON or a JSON file, in order."""
    archs: list[Any] = []
    rng = random.Random(seed)
    for spec in specs:
        try:
            if spec == "min":
                archs.append(space.smallest())
            elif spec == "max":
                archs.append(space.largest())
            elif spec.startswith("random:"):
                count = int(spec.split(":", 1)[1])
                if count < 1:
                    raise ValueError("N must be at least 1")
                archs += [space.sample(rng) for _ in range(count)]
            else:
                path = Path(spec)
                text = path.read_text() if not spec.lstrip().startswith("{") and path.is_file() else spec
                archs.append(space.arch_from_json(text))
        except (ValueError, KeyError, TypeError) as exc:
            raise EdgenasError(f"--arch {spec[:60]}: {exc} (use min, max, random:N or an arch as JSON)") from None
    return archs


def read_arch_file(space: Any, path: str | Path) -> list[Any]:
    """Archs from a file: one per line (JSON; for nb201 also cell strings or indices), or a
    CSV with an ``arch`` column."""
    path = Path(path)
    if not path.is_file():
        raise EdgenasError(f"archs file {path} does not exist" if not path.exists() else f"archs file {path} is not a file")
    try:
        if path.suffix == ".csv":
            with path.open(newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                if "arch" not in (reader.fieldnames or []):
                    raise EdgenasError(f"{path}: no 'arch' column; the header must name arch")
                texts = [(i, row["arch"]) for i, row in enumerate(reader, start=2)]
        else:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
            texts = [(i, ln) for i, ln in enumerate(lines, start=1) if ln.strip()]
    except UnicodeDecodeError:
        raise EdgenasError(f"{path} is not UTF-8 text; save it as UTF-8 (one arch per line, or a CSV)") from None
    archs = []
    for line, text in texts:
        try:
            archs.append(space.arch_from_json(text.strip()))
        except (ValueError, KeyError, TypeError) as exc:
            raise EdgenasError(f"{path}:{line}: not a {space.name} arch ({exc}); fix or remove the line") from None
    if not archs:
        raise EdgenasError(f"{path} lists no archs")
    return archs


__all__ = ["DEFAULT_PRESETS", "build_space", "parse_arch_specs", "read_arch_file"]
