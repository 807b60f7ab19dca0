"""Config reference tables generated from the config dataclasses themselves.

Keys, types and defaults come from ``dataclasses.fields`` of the config classes (what
``nas.config.load_config`` validates against), meanings from ``config_keys.yml`` beside
this file. A field without a meaning, or a meaning without a field, is an error: the
documentation build fails instead of describing a config that no longer exists.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml
from results import ROOT

KEYS_FILE = Path(__file__).with_name("config_keys.yml")


class UndocumentedKey(ValueError):
    """``config_keys.yml`` and the config dataclasses disagree."""


def _import(path: str) -> type:
    """``"nas.training.config.TrainConfig"`` -> the class (the repository root on ``sys.path``)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    module, _, name = path.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)


def _is_optional(tp: Any) -> tuple[bool, Any]:
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) != len(get_args(tp)):
            return True, args[0] if len(args) == 1 else typing.Union[tuple(args)]  # noqa: UP007
    return False, tp


def type_name(tp: Any) -> str:
    """A YAML reader's name of a field type: ``int or null``, ``list of int``, `` `sgd`, `adamw` ``."""
    optional, tp = _is_optional(tp)
    origin = get_origin(tp)
    if origin is Literal:
        text = ", ".join(f"`{a}`" for a in get_args(tp))
    elif origin in (tuple, list):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        if origin is tuple and len(args) > 1 and Ellipsis not in get_args(tp):
            text = "[" + ", ".join(type_name(a) for a in args) + "]"
        else:
            text = f"list of {type_name(args[0])}" if args else "list"
    elif origin is dict or tp is dict:
        text = "mapping"
    elif dataclasses.is_dataclass(tp):
        text = "mapping"
    else:
        text = {int: "int", float: "float", str: "str", bool: "bool"}.get(tp, getattr(tp, "__name__", str(tp)))
    return f"{text} or null" if optional else text


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def default_text(value: Any) -> str:
    """The default as it would be written in YAML."""
    if value is dataclasses.MISSING:
        return "required"
    if dataclasses.is_dataclass(value):
        return "see below"
    plain = list(value) if isinstance(value, tuple) else value
    return "`" + yaml.safe_dump(plain, default_flow_style=True, width=10_000).strip().removesuffix("...").strip() + "`"


def walk(cls: type, prefix: str = "") -> Iterator[tuple[str, Any, Any]]:
    """``(dotted key, type, default)`` of every leaf field; nested config sections are descended into."""
    hints = get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        tp = hints[field.name]
        if dataclasses.is_dataclass(tp):
            yield from walk(tp, f"{prefix}{field.name}.")
        else:
            yield f"{prefix}{field.name}", tp, _default(field)


def config_table(section: str, cls_path: str) -> str:
    """The ``key | type | default | meaning`` table of one config class."""
    meanings: dict[str, str] = yaml.safe_load(KEYS_FILE.read_text())[section]
    fields = list(walk(_import(cls_path)))
    missing = [key for key, _, _ in fields if key not in meanings]
    unknown = sorted(set(meanings) - {key for key, _, _ in fields})
    if missing or unknown:
        raise UndocumentedKey(
            f"{cls_path} and {KEYS_FILE.name} [{section}] disagree: "
            + (f"no meaning for {', '.join(missing)}" if missing else "")
            + ("; " if missing and unknown else "")
            + (f"no such field: {', '.join(unknown)}" if unknown else "")
        )
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, tp, default in fields:
        lines.append(f"| `{key}` | {type_name(tp)} | {default_text(default)} | {meanings[key]} |")
    return "\n".join(lines) + f"\n\n*Generated from `{cls_path}` and its sections.*"


CONFIGS: dict[str, Callable[[], str]] = {
    "train": lambda: config_table("train", "nas.training.config.TrainConfig"),
    "phase": lambda: config_table("phase", "nas.training.config.PhaseConfig"),
    "adapt": lambda: config_table("adapt", "nas.adapt.config.SimulationConfig"),
    "adapt_round": lambda: config_table("adapt_round", "nas.adapt.config.RoundConfig"),
}
"""Every table a page may name in a ``<!-- config: NAME -->`` marker."""
