"""Command-line flags from config dataclasses, parsed by tyro: one declaration for a flag and its field.

:func:`parse` hands a config dataclass to `tyro <https://brentyi.github.io/tyro/>`_, which reads each
field's type (``bool``: a switch; ``X | None``: optional; ``Literal[...]``: choices; ``tuple[int, ...]``:
one or more values; ``tuple[int, int]``: exactly two; ``Path``), its default, and prints the help and
the errors. A field becomes ``--field-name``; nested configs add their flags beside the others (no
prefix). The help text is the field's attribute docstring (a string literal right after the field, as
PEP 257 calls it). ``field(metadata=...)`` adds:

* ``flag``: the option string instead of ``--field-name``;
* ``choices``: allowed values (a dict maps each to a line of help);
* ``aliases``: ``{"--synthetic-oracle": "synthetic-oracle"}``: flags that stand for the field's flag and a value;
* ``default_text``: what the help shows as the default (``runs/<family>-<time>``);
* ``metavar``;
* ``nested``: the field holds another config whose flags are added next to these
  (its class is the field's type, or given by the caller when the type is ``Any``).

What tyro is given is a dataclass built here per call (:func:`command`): the same fields, each annotated
with its flag name, help and choices, a family's defaults in place (``--game`` for Atari's ``env``,
its budget). :func:`to_argv` is the inverse of parsing: the flags that give back a config.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import inspect
import io
import json
import os
import sys
import textwrap
import types
import typing
from pathlib import Path
from collections.abc import Iterator
from typing import Annotated, Any, Callable, Literal, NoReturn

import tyro

__all__ = ["field_docs", "command", "parse", "failure", "default_config", "to_argv", "value_argv", "flat_fields",
           "replace_flat", "flag_name", "json_flags"]


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


def _fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.init]


def _nested_class(f: dataclasses.Field, tp: Any, nested: dict[str, type]) -> type | None:
    return nested.get(f.name, tp if dataclasses.is_dataclass(tp) else None)


def _leaves(cls: type, nested: dict[str, type]) -> Iterator[tuple[dataclasses.Field, Any]]:
    """The (field, type) of every flag of ``cls`` and of its nested configs, depth first."""
    for f, tp in _fields(cls):
        if not f.metadata.get("nested"):
            yield f, tp
            continue
        sub = _nested_class(f, tp, nested)
        if sub is not None:
            yield from _leaves(sub, nested)


def _default(f: dataclasses.Field, defaults: dict[str, Any]) -> Any:
    if f.name in defaults:
        value = defaults[f.name]
        return tuple(value) if isinstance(value, list) else value  # a frozen config holds tuples
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING  # required: the caller (a family) gives it


def _is_optional(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


_TYRO_CONFIG = (tyro.conf.OmitArgPrefixes, tyro.conf.FlagCreatePairsOff)
"""What every command asks of tyro: nested configs' flags without a prefix, a switch without a ``--no-`` twin."""


def command(cls: type, *, defaults: dict[str, Any] | None = None, nested: dict[str, type] | None = None,
            names: dict[str, str] | None = None) -> type:
    """The dataclass tyro parses for ``cls``: its fields, each annotated with its flag, help and choices.

    Args:
        cls: a frozen config dataclass whose fields carry attribute docstrings.
        defaults: values that replace the fields' defaults (a family's budget), by field name.
        nested: classes of the ``Any``-typed nested fields, by field name.
        names: option strings that replace the fields' own, by field name (``{"env": "--game"}``).

    Raises:
        ValueError: a field without a docstring, or a switch that defaults to True.
    """
    defaults, nested, names = defaults or {}, nested or {}, names or {}
    docs = field_docs(cls)
    specs = []
    for f, tp in _fields(cls):
        if f.metadata.get("nested"):
            sub = _nested_class(f, tp, nested)
            if sub is not None:
                sub_cmd = command(sub, defaults=defaults, nested=nested, names=names)
                specs.append((f.name, sub_cmd, dataclasses.field(default_factory=sub_cmd)))
            continue
        doc = docs.get(f.name)
        if not doc:
            raise ValueError(f"{cls.__name__}.{f.name} has no docstring: every flag needs its help text")
        default = _default(f, defaults)
        if tp is bool and default:
            raise ValueError(f"{cls.__name__}.{f.name}: a switch must default to False")
        choices = f.metadata.get("choices")
        if isinstance(choices, dict):
            doc += ": " + "; ".join(f"{k}: {v}" for k, v in choices.items())
        if choices is not None:
            tp = Literal[tuple(choices)] | None if _is_optional(tp) else Literal[tuple(choices)]
        name = names.get(f.name) or flag_name(f)
        for alias, const in f.metadata.get("aliases", {}).items():
            doc += f"; {alias} is short for {name} {const}"
        arg = dict(name=name.removeprefix("--"), help=doc)
        if "default_text" in f.metadata:
            arg["help_behavior_hint"] = f"(default: {f.metadata['default_text']})"
        if "metavar" in f.metadata:
            arg["metavar"] = f.metadata["metavar"]
        field_ = dataclasses.field() if default is dataclasses.MISSING else dataclasses.field(default=default)
        specs.append((f.name, Annotated[tp, tyro.conf.arg(**arg)], field_))
    required = [s for s in specs if s[2].default is dataclasses.MISSING and s[2].default_factory is dataclasses.MISSING]
    return dataclasses.make_dataclass(cls.__name__, required + [s for s in specs if s not in required], frozen=True)


def _build(cls: type, parsed: Any, nested: dict[str, type]) -> Any:
    """The config ``cls`` from what tyro returned (an instance of :func:`command`'s class)."""
    values = {}
    for f, tp in _fields(cls):
        if f.metadata.get("nested"):
            sub = _nested_class(f, tp, nested)
            values[f.name] = None if sub is None else _build(sub, getattr(parsed, f.name), nested)
        else:
            values[f.name] = getattr(parsed, f.name)
    return cls(**values)


def _expand(cls: type, argv: list[str], nested: dict[str, type], names: dict[str, str],
            fail: Callable[[str], NoReturn]) -> list[str]:
    """``argv`` as tyro reads it: a unique prefix of a flag written out (``--seed`` -> ``--seeds``, as argparse
    allowed), each alias flag written out (``--synthetic-oracle`` -> ``--labeler synthetic-oracle``); an empty
    value of a path flag is refused (``Path("")`` would be the current directory)."""
    aliases: dict[str, list[str]] = {}
    paths: set[str] = set()
    flags: set[str] = {"--help"}
    for f, tp in _leaves(cls, nested):
        name = names.get(f.name) or flag_name(f)
        flags.add(name)
        aliases.update({alias: [name, str(const)] for alias, const in f.metadata.get("aliases", {}).items()})
        if Path in (tp, *typing.get_args(tp)):
            paths.add(name)
    flags |= set(aliases)
    words: list[str] = []
    for word in argv:
        flag, eq, value = word.partition("=")
        if flag.startswith("--") and flag not in flags:
            matches = sorted(f for f in flags if f.startswith(flag))
            if len(matches) > 1:
                fail(f"ambiguous option: {flag} could match {', '.join(matches)}")
            if matches:
                word = matches[0] + eq + value
        words.append(word)
    out: list[str] = []
    for i, word in enumerate(words):
        flag, eq, value = word.partition("=")
        if flag in paths and ((eq and not value.strip()) or (not eq and i + 1 < len(words) and not words[i + 1].strip())):
            fail(f"argument {flag}: an empty path: give a path (or leave the flag out for its default)")
        out += aliases.get(word, [word])
    return out


def _message(text: str) -> str:
    """tyro's error box as one line: its title and its first paragraph (up to the box's first rule)."""
    lines = [ln.strip().strip("│╭╮╰╯").strip() for ln in text.splitlines()]
    title, body = "", []
    for ln in lines:
        if not ln or set(ln) <= set("─-╭╮╰╯"):  # a border or a rule
            if body:
                break
            continue
        if not title:
            title = ln.strip("─- ")
        else:
            body.append(ln)
    text = " ".join(body)
    if text.startswith(title):  # "Unrecognized options: --x" under the title "Unrecognized options"
        return text
    return f"{title}: {text}" if text else (title or "bad command-line flags")


def parse(cls: type, argv: list[str] | None = None, *, defaults: dict[str, Any] | None = None,
          nested: dict[str, type] | None = None, names: dict[str, str] | None = None, prog: str | None = None,
          description: str | None = None, error: Callable[[str], NoReturn] | None = None):
    """The config ``cls`` from command-line flags, parsed by tyro (``--help`` prints the help and exits).

    Args:
        cls: the config dataclass; ``defaults``, ``nested``, ``names``: as for :func:`command`.
        argv: the flags (default: ``sys.argv[1:]``).
        prog, description: what the help shows.
        error: called with a one-line message on bad flags; default: tyro prints its message and the
            command exits with status 2. The Python API passes one that raises ``ValueError``.
    """
    nested, names = nested or {}, names or {}
    spec = command(cls, defaults=defaults, nested=nested, names=names)
    fail = failure(prog or "prefrl", error)
    argv = _expand(cls, list(sys.argv[1:] if argv is None else argv), nested, names, fail)

    def cli():
        return tyro.cli(spec, args=argv, prog=prog, description=description, config=_TYRO_CONFIG)

    if error is None:
        parsed = cli()
    else:
        out = io.StringIO()
        try:  # wide, so that tyro wraps no line of its message
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), _columns(1000):
                parsed = cli()
        except SystemExit as stop:
            if not stop.code:  # --help: print it after all
                print(out.getvalue(), end="")
                raise
            error(_message(out.getvalue()))
    config = _build(cls, parsed, nested)
    values = flat_fields(config)
    for f, tp in _leaves(cls, nested):  # tyro reads `--seeds` alone as no seeds
        if values[f.name] == () and typing.get_origin(tp) is tuple and typing.get_args(tp)[-1] is Ellipsis:
            fail(f"argument {names.get(f.name) or flag_name(f)}: expected at least one value")
    return config


def failure(prog: str, error: Callable[[str], NoReturn] | None) -> Callable[[str], NoReturn]:
    """What a command does with a bad value: ``error(message)`` when given (the Python API raises), else print
    ``prog: error: message`` and exit with status 2."""
    def fail(message: str) -> NoReturn:
        if error is not None:
            error(message)
        print(f"{prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)

    return fail


@contextlib.contextmanager
def _columns(n: int):
    """``COLUMNS`` set to ``n`` inside (the terminal width tyro lays its messages out for)."""
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(n)
    try:
        yield
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before


def default_config(cls: type, *, defaults: dict[str, Any] | None = None, nested: dict[str, type] | None = None):
    """What :func:`parse` gives without flags: the defaults (a family's in place), nested configs included."""
    defaults, nested = defaults or {}, nested or {}
    values = {}
    for f, tp in _fields(cls):
        if f.metadata.get("nested"):
            sub = _nested_class(f, tp, nested)
            values[f.name] = None if sub is None else default_config(sub, defaults=defaults, nested=nested)
        else:
            values[f.name] = _default(f, defaults)
    return cls(**values)


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
