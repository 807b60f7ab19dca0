"""YAML configs validated into typed, frozen dataclasses.

``load_config(TrainConfig, "train.yaml")`` reads the file with ``yaml.safe_load`` and
checks it against the dataclass: an unknown key, a wrong type or an impossible value is
an :class:`EdgenasError` whose one line names the key (``train.lr: expected a number,
got 'fast'``). Dataclasses add value checks in ``__post_init__`` by raising ``ValueError``
(the message is prefixed with the section).
"""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from nas.errors import EdgenasError

T = TypeVar("T")


def load_config(cls: type[T], source: str | Path | dict[str, Any]) -> T:
    """Parse ``source`` (a YAML path or an already-loaded dict) into ``cls``."""
    data = source if isinstance(source, dict) else read_yaml(source)
    return _convert(cls, data, "")


def read_yaml(path: str | Path) -> Any:
    """The document in the YAML file ``path`` (``yaml.safe_load``), or a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise EdgenasError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise EdgenasError(f"{path} is not valid YAML{where}: fix the syntax") from None
    return {} if data is None else data


def config_to_dict(obj: Any) -> Any:
    """The plain-data form of a config (what was validated), e.g. for checkpoint metadata."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: config_to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [config_to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: config_to_dict(v) for k, v in obj.items()}
    return obj


def _convert(tp: Any, value: Any, key: str) -> Any:
    where = key or "config"
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise EdgenasError(f"{where}: expected a mapping, got {_show(value)}")
        hints = get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise EdgenasError(
                f"{_join(key, unknown[0])}: unknown key; known keys are {', '.join(sorted(fields))}"
            )
        kwargs = {}
        for name, f in fields.items():
            if name in value:
                kwargs[name] = _convert(hints[name], value[name], _join(key, name))
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise EdgenasError(f"{_join(key, name)}: required key is missing")
        try:
            return tp(**kwargs)
        except ValueError as exc:
            raise EdgenasError(f"{where}: {exc}") from None
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, key)
            except EdgenasError as exc:
                errors.append(str(exc))
        raise EdgenasError(errors[0] if len(errors) == 1 else f"{where}: unexpected {_show(value)}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise EdgenasError(f"{where}: must be one of {', '.join(map(str, choices))}, got {_show(value)}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise EdgenasError(f"{where}: expected a list, got {_show(value)}")
        args = get_args(tp)
        item = args[0] if args else Any
        items = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise EdgenasError(f"{where}: expected a mapping, got {_show(value)}")
        _, vt = get_args(tp) or (Any, Any)
        return {str(k): _convert(vt, v, _join(key, str(k))) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise EdgenasError(f"{where}: expected true or false, got {_show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise EdgenasError(f"{where}: expected an integer, got {_show(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise EdgenasError(f"{where}: expected a number, got {_show(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise EdgenasError(f"{where}: expected a string, got {_show(value)}")
        return value
    if tp is Path:
        if not isinstance(value, str):
            raise EdgenasError(f"{where}: expected a path, got {_show(value)}")
        return Path(value)
    raise TypeError(f"config type {tp!r} at {where} is not supported")  # a bug in a config class


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 40 else text[:37] + "..."


__all__ = ["config_to_dict", "load_config", "read_yaml"]
