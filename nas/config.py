"""YAML configs validated into typed, frozen dataclasses.

``load_config(TrainConfig, "train.yaml")`` reads the file with ``yaml.safe_load`` and
checks it against the dataclass: an unknown key, a wrong type or an impossible value is
an :class:`EdgenasError` whose one line names the key (``train.lr: expected a number,
got 'fast'``). Dataclasses add value checks in ``__post_init__`` by raising ``ValueError``
(the message is prefixed with the section).
"""

from __future__ import annotations

import dataclasses
import reprlib
import types
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from nas.errors import EdgenasError

T = TypeVar("T")


MAX_NODES = 100_000
"""A config document may hold at most this many values once its aliases are expanded: real
configs hold hundreds; a "billion laughs" document (aliases of aliases) holds billions."""


def load_config(cls: type[T], source: str | Path | dict[str, Any]) -> T:
    """Parse ``source`` (a YAML path or an already-loaded dict) into ``cls``.

    A missing file, a directory, a file that is not UTF-8 text, invalid YAML, an empty
    (or comment-only) file and a document whose aliases expand beyond :data:`MAX_NODES`
    values are each refused with one line naming the file; so is any value that does not
    fit ``cls`` (the line names the key and shows at most a few dozen characters of it).
    """
    data = source if isinstance(source, dict) else read_yaml(source)
    return _convert(cls, data, "")


def read_yaml(path: str | Path) -> Any:
    """The document in the YAML file ``path``, loaded safely (plain data only) with a bound on
    alias expansion; an empty or comment-only file is refused (a mistake, not a request for
    every default)."""
    path = Path(path)
    data = _read_yaml(path)
    if data is None:
        raise EdgenasError(
            f"{path} is empty: write the settings in it (copy one of experiments/configs/*.yaml); "
            "an empty mapping {} asks for every default"
        )
    return data


def _read_yaml(path: Path) -> Any:
    """The document in ``path`` (``None`` for an empty one)."""
    if path.is_dir():
        raise EdgenasError(f"config file {path} is a directory, not a YAML file; pass the .yaml file in it")
    if not path.is_file():
        raise EdgenasError(f"config file {path} does not exist")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise EdgenasError(f"cannot read config file {path} ({exc.strerror or exc}); check its permissions") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        wide = " (it looks like UTF-16)" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise EdgenasError(
            f"{path} is not UTF-8 text{wide}: byte 0x{raw[exc.start]:02x} at offset {exc.start}; "
            "save it as UTF-8 YAML"
        ) from None
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _count_values(node, {}, set(), path)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise EdgenasError(f"{path} is not valid YAML{where}: fix the syntax") from None
    except RecursionError:
        raise EdgenasError(f"{path} nests too deeply to be a config; flatten it") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise EdgenasError(f"{path} holds a value that cannot be read ({_short(str(exc), 80)}); fix it") from None
    finally:
        loader.dispose()


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (plain data only); :func:`_read_yaml` measures the composed node
    graph before constructing anything from it."""


def _count_values(node: yaml.Node, memo: dict[int, int], active: set[int], path: Path) -> int:
    """How many values ``node`` stands for once every alias is expanded (memoised per node,
    so counting is linear in the document's size); EdgenasError above :data:`MAX_NODES` or
    for an alias that refers to its own ancestor."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in active:
        raise EdgenasError(f"{path} refers to a value inside itself (a recursive alias); remove the alias")
    active.add(key)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_count_values(child, memo, active, path) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_count_values(k, memo, active, path) + _count_values(v, memo, active, path)
                     for k, v in node.value)  # fmt: skip
    active.discard(key)
    if total > MAX_NODES:
        raise EdgenasError(
            f"{path}: its aliases expand to more than {MAX_NODES:,} values (at line {node.start_mark.line + 1}); "
            "a config needs far fewer: remove the nested aliases"
        )
    memo[key] = total
    return total


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
        unknown = sorted((str(k) for k in value if k not in fields), key=str)
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
            raise EdgenasError(f"{where}: {_short(' '.join(str(exc).split()), 300)}") from None
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
    name = _short(name, 40)
    return f"{key}.{name}" if key else name


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 2, 4, 4, 3
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 36, 36, 36


def _show(value: Any) -> str:
    """A short repr of ``value``: bounded work and length whatever its size (a value shared
    by aliases could otherwise print billions of items)."""
    try:
        text = _REPR.repr(value)
    except ValueError:  # e.g. an int too long to convert to decimal
        text = f"<{type(value).__name__}>"
    return _short(text, 40)


__all__ = ["config_to_dict", "load_config", "read_yaml"]
