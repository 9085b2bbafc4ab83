"""Command-line flags generated from config dataclasses: one declaration for a flag and its field.

A field becomes ``--field-name``: its type gives the argparse type (``bool``: a switch;
``X | None``: optional; ``Literal[...]``: choices; ``tuple[int, ...]``: one or more values;
``tuple[int, int]``: exactly two; ``Path``), its default the flag's default, and the
docstring under it (a string literal right after the field, as PEP 257 calls an attribute
docstring) the help text, followed by the default. ``field(metadata=...)`` adds:

* ``flag``: the option string instead of ``--field-name`` (``--game`` for ``env``);
* ``choices``: allowed values (a dict maps each to a line of help);
* ``aliases``: ``{"--synthetic-oracle": "synthetic-oracle"}``: more flags that store a constant;
* ``default_text``: what the help shows as the default (``runs/<family>-<time>``);
* ``metavar``;
* ``nested``: the field holds another config whose flags are added next to these
  (its class is the field's type, or given by the caller when the type is ``Any``).

:func:`to_argv` is the inverse of parsing: the flags that give back a config.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import json
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, Literal

__all__ = ["field_docs", "add_flags", "from_namespace", "to_argv", "parse", "flat_fields", "replace_flat",
           "flag_name", "json_flags"]


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a class and its bases: ``{field: text}``, the text on one line."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for stmt, nxt in zip(body, body[1:]):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
                docs[stmt.target.id] = " ".join(inspect.cleandoc(nxt.value.value).split())
    return docs


def flag_name(f: dataclasses.Field) -> str:
    """The option string of a field: ``metadata["flag"]`` or ``--`` + its name with dashes."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class _Kind:
    """How one field's type reads from the command line."""

    base: Any  # the element type: int, float, str, Path, bool
    optional: bool = False
    nargs: int | str | None = None  # "+" or a fixed count for tuples
    choices: tuple | None = None


def _kind(tp: Any) -> _Kind:
    optional = False
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"a flag holds one type (or None), got {tp}")
        tp, optional = args[0], True
    if typing.get_origin(tp) is Literal:
        choices = typing.get_args(tp)
        return _Kind(type(choices[0]), optional, choices=choices)
    if typing.get_origin(tp) in (tuple, list):
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis or typing.get_origin(tp) is list:
            return _Kind(args[0], optional, nargs="+")
        if len(set(args)) != 1:
            raise TypeError(f"a fixed-length tuple flag holds one element type, got {tp}")
        return _Kind(args[0], optional, nargs=len(args))
    if tp in (int, float, str, Path, bool):
        return _Kind(tp, optional)
    raise TypeError(f"no flag for type {tp}")


def _path(text: str) -> Path:
    """A path flag's value; an empty one is refused (``Path("")`` is the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path: give a directory (or leave the flag out for its default)")
    return Path(text)


def _fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.init]


def _show(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return " ".join(map(str, value))
    return "unset" if value is None else str(value)


def add_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *,
              defaults: dict[str, Any] | None = None, nested: dict[str, type] | None = None,
              names: dict[str, str] | None = None) -> None:
    """Adds one flag per field of the dataclass ``cls`` (and of its nested configs).

    Args:
        parser: the parser or argument group to add to.
        cls: a dataclass whose fields carry attribute docstrings.
        defaults: values that replace the fields' defaults (a family's budget), by field name.
        nested: classes of the ``Any``-typed nested fields, by field name.
        names: option strings that replace the fields' own, by field name (``{"env": "--game"}``).
    """
    defaults, nested, names = defaults or {}, nested or {}, names or {}
    docs = field_docs(cls)
    for f, tp in _fields(cls):
        if f.metadata.get("nested"):
            sub = nested.get(f.name, tp if dataclasses.is_dataclass(tp) else None)
            if sub is not None:
                add_flags(parser, sub, defaults=defaults, nested=nested, names=names)
            continue
        default = defaults.get(f.name, f.default if f.default is not dataclasses.MISSING else
                               f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        kind = _kind(tp)
        doc = docs.get(f.name)
        if not doc:
            raise ValueError(f"{cls.__name__}.{f.name} has no docstring: every flag needs its help text")
        choices = f.metadata.get("choices", kind.choices)
        if isinstance(choices, dict):
            doc += ": " + "; ".join(f"{k}: {v}" for k, v in choices.items())
            choices = tuple(choices)
        shown = f.metadata.get("default_text", _show(default))
        text = f"{doc} (default: {shown})".replace("%", "%%")
        name = names.get(f.name) or flag_name(f)
        if kind.base is bool and kind.nargs is None:
            if default:
                raise ValueError(f"{cls.__name__}.{f.name}: a switch must default to False")
            parser.add_argument(name, dest=f.name, action="store_true", help=text)
        else:
            kwargs = dict(dest=f.name, type=_path if kind.base is Path else kind.base, default=default, help=text)
            if kind.nargs is not None:
                kwargs["nargs"] = kind.nargs
            if choices is not None:
                kwargs["choices"] = tuple(choices)
            if "metavar" in f.metadata:
                kwargs["metavar"] = f.metadata["metavar"]
            parser.add_argument(name, **kwargs)
        for alias, const in f.metadata.get("aliases", {}).items():
            parser.add_argument(alias, dest=f.name, action="store_const", const=const,
                                help=f"short for {name} {const}")


def from_namespace(cls: type, ns: argparse.Namespace, *, nested: dict[str, type] | None = None):
    """The config ``cls`` built from parsed flags (tuple fields get tuples back)."""
    nested = nested or {}
    values = {}
    for f, tp in _fields(cls):
        if f.metadata.get("nested"):
            sub = nested.get(f.name, tp if dataclasses.is_dataclass(tp) else None)
            values[f.name] = from_namespace(sub, ns, nested=nested) if sub is not None else None
            continue
        v = getattr(ns, f.name)
        if isinstance(v, list) and typing.get_origin(_strip_optional(tp)) is tuple:
            v = tuple(v)
        values[f.name] = v
    return cls(**values)


def _strip_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(tp) if a is not type(None))
    return tp


def to_argv(config: Any, names: dict[str, str] | None = None) -> list[str]:
    """The flags that parse back to ``config`` (every field given; switches only when on, unset ones left out)."""
    names = names or {}
    argv: list[str] = []
    for f, _ in _fields(type(config)):
        v = getattr(config, f.name)
        if f.metadata.get("nested"):
            if v is not None:
                argv += to_argv(v, names)
            continue
        argv += value_argv(names.get(f.name) or flag_name(f), v)
    return argv


def value_argv(flag: str, value: Any) -> list[str]:
    """The command-line words of one flag's value: none for None or False (an unset flag, a switch off), the
    flag alone for True, the flag and its values for a tuple or list, else the flag and the value (floats by
    ``repr``, exact)."""
    if value is None or value is False:
        return []
    if value is True:
        return [flag]
    if isinstance(value, (tuple, list)):
        return [flag, *map(str, value)]
    return [flag, repr(value) if isinstance(value, float) else str(value)]


def parse(cls: type, argv: list[str], *, defaults: dict[str, Any] | None = None,
          nested: dict[str, type] | None = None, names: dict[str, str] | None = None):
    """Parses ``argv`` with the flags of ``cls`` alone (tests, scripts)."""
    p = argparse.ArgumentParser(exit_on_error=False)
    add_flags(p, cls, defaults=defaults, nested=nested, names=names)
    return from_namespace(cls, p.parse_args(argv), nested=nested)


def flat_fields(config: Any) -> dict[str, Any]:
    """``{field: value}`` over a config and its nested configs, as the flags name them."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        if f.metadata.get("nested"):
            if v is not None:
                out.update(flat_fields(v))
        else:
            out[f.name] = v
    return out


def replace_flat(config: Any, **changes: Any):
    """A new config with ``changes`` applied, each to the (nested) config that holds the field."""
    own, rest = {}, dict(changes)
    for f in dataclasses.fields(config):
        if f.metadata.get("nested"):
            sub = getattr(config, f.name)
            if sub is not None:
                mine = {k: rest.pop(k) for k in list(rest) if k in {g.name for g in dataclasses.fields(sub)}
                        or k in flat_fields(sub)}
                if mine:
                    own[f.name] = replace_flat(sub, **mine)
        elif f.name in rest:
            own[f.name] = rest.pop(f.name)
    if rest:
        raise TypeError(f"{type(config).__name__} has no field {', '.join(rest)}")
    return dataclasses.replace(config, **own)


def json_flags(config: Any, leave_out: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """The flat fields as JSON values (paths as text, tuples as lists), sorted, without ``leave_out``."""
    flat = {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(flat_fields(config).items())
            if k not in leave_out}
    return json.loads(json.dumps(flat))
