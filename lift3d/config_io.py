"""Dataclass configs to and from JSON-able dicts, and dotted ``section.field=value`` overrides.

A leaf: it imports nothing from lift3d and works on any (nested) dataclass config, so every layer (the engine
reading a run's ``config.json``, the CLI and the tools applying overrides) can use it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any, Sequence, TypeVar

__all__ = ["config_to_dict", "config_from_dict", "apply_overrides", "parse_like"]

C = TypeVar("C")


def config_to_dict(cfg: Any) -> dict:
    """A (nested) dataclass config as a JSON-able dict (tuples become lists; other values their ``str``)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def config_from_dict(cls: type[C], d: dict) -> C:
    """Rebuild a (nested) dataclass config from :func:`config_to_dict` output (unknown keys are ignored, so runs
    written by an older lift3d still load; JSON lists become tuples where the field's default is a tuple)."""
    defaults = cls()
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        default, value = getattr(defaults, f.name), d[f.name]
        if dataclasses.is_dataclass(default):
            kwargs[f.name] = config_from_dict(type(default), value)
        elif isinstance(default, tuple) and isinstance(value, list):
            kwargs[f.name] = tuple(value)
        else:
            kwargs[f.name] = value
    return cls(**kwargs)


class ConfigOverrideError(ValueError):
    """A ``--set key=value`` override names no config field or its value does not parse as the field's type."""


def apply_overrides(cfg: C, overrides: Sequence[str]) -> C:
    """A copy of ``cfg`` with dotted ``key=value`` overrides applied, e.g. ``optim.iterations=2000`` or
    ``losses.kernel=exp_distance``.

    Values are parsed as the type of the current value (bool: true/false; tuples: comma-separated).
    """
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigOverrideError(f"override {item!r} must look like section.field=value")
        key, raw = item.split("=", 1)
        *path, last = key.strip().split(".")
        obj: Any = cfg
        for p in path:
            if not hasattr(obj, p):
                raise ConfigOverrideError(f"override {item!r}: no config section {p!r}")
            obj = getattr(obj, p)
        if not dataclasses.is_dataclass(obj) or not hasattr(obj, last):
            raise ConfigOverrideError(f"override {item!r}: no field {last!r} in {type(obj).__name__}")
        value = parse_like(getattr(obj, last), raw, item)
        choices = literal_choices(type(obj), last)
        if choices and value not in choices:
            raise ConfigOverrideError(f"override {item!r}: {value!r} is not one of {', '.join(map(str, choices))}")
        setattr(obj, last, value)
    return cfg


def literal_choices(cls: type, name: str) -> tuple:
    """The allowed values of field ``name`` of dataclass ``cls`` when it is annotated ``Literal[...]`` (or
    ``Optional[Literal[...]]``, None included); ``()`` for any other annotation."""
    import types
    import typing

    try:
        hint = typing.get_type_hints(cls).get(name)
    except Exception:  # an annotation that does not resolve: no check
        return ()
    if typing.get_origin(hint) is typing.Literal:
        return typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        lits = [a for a in args if typing.get_origin(a) is typing.Literal]
        if lits and all(typing.get_origin(a) is typing.Literal or a is type(None) for a in args):
            return tuple(v for a in lits for v in typing.get_args(a)) + ((None,) if type(None) in args else ())
    return ()


def parse_like(current: Any, raw: str, item: str) -> Any:
    """``raw`` parsed as the type of ``current`` (``item`` names the override in errors); ``none`` -> None."""
    raw = raw.strip()
    if raw.lower() == "none":
        return None
    if isinstance(current, bool):
        if raw.lower() not in ("true", "false", "1", "0"):
            raise ConfigOverrideError(f"override {item!r}: expected true/false")
        return raw.lower() in ("true", "1")
    try:
        if isinstance(current, int):
            return int(raw)
        if isinstance(current, float):
            return float(raw)
        if isinstance(current, tuple):
            return tuple(int(x) if x.strip().lstrip("-").isdigit() else float(x) for x in raw.split(",") if x.strip())
    except ValueError:
        kind = "comma-separated numbers" if isinstance(current, tuple) else type(current).__name__
        raise ConfigOverrideError(f"override {item!r}: {raw!r} is not a valid {kind}") from None
    if current is None:
        for cast in (int, float):
            try:
                return cast(raw)
            except ValueError:
                pass
    return raw
