"""A type-hinted, documented Python function → the JSON schema of its arguments.

Supported hints: ``int`` (integer), ``float`` (number), ``str`` (string), ``bool`` (boolean),
``Literal[...]`` (enum), ``list[X]`` (array), ``dict[str, X]`` (object), and ``X | None`` /
``Optional[X]`` (the argument may be left out). A parameter with a default may be left out and
its default appears in the schema. The first paragraph of the docstring describes the tool; a
Google-style ``Args:`` section describes each parameter.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Literal, Union, get_args, get_origin

from agentmill.tools.errors import ToolDefinitionError

_SCALARS = {int: "integer", float: "number", str: "string", bool: "boolean"}
_SUPPORTED = "int, float, str, bool, Literal[...], list[X], dict[str, X], X | None"
_ARGS_HEADER = re.compile(r"^(\s*)(Args|Arguments|Parameters):\s*$")
_ARG_LINE = re.compile(r"^(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


@dataclass
class FunctionSchema:
    """What a model needs to call a function, and what we need to call it for the model."""

    description: str
    parameters: dict  # JSON schema of an object, one property per parameter
    nullable: frozenset[str]  # `X | None` parameters: absent or null means None


def function_schema(func: Callable, tool_name: str) -> FunctionSchema:
    """Build the schema of `func`; any problem is a ToolDefinitionError naming the function."""
    where = f"tool '{tool_name}' (function {func.__qualname__})"
    summary, arg_docs = parse_docstring(inspect.getdoc(func) or "")
    if not summary:
        raise ToolDefinitionError(f"{where}: needs a docstring; its first paragraph is what the model reads")
    try:
        hints = typing.get_type_hints(func)
    except Exception as err:  # an annotation naming something undefined
        raise ToolDefinitionError(f"{where}: cannot read its type hints: {err}") from None

    properties, required, nullable = {}, [], set()
    params = inspect.signature(func).parameters
    for name, param in params.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise ToolDefinitionError(f"{where}: parameter '{name}': *args, **kwargs and positional-only "
                                      "parameters cannot be called with JSON arguments")
        if name not in hints:
            raise ToolDefinitionError(f"{where}: parameter '{name}' has no type hint")
        hint, optional = _strip_none(hints[name])
        try:
            prop = _json_type(hint)
        except TypeError:
            raise ToolDefinitionError(f"{where}: parameter '{name}' has the unsupported type "
                                      f"{_show(hints[name])} (supported: {_SUPPORTED})") from None
        if name in arg_docs:
            prop["description"] = arg_docs[name]
        if param.default is not param.empty:
            if param.default is not None and _is_json(param.default):
                prop["default"] = param.default
        elif not optional:
            required.append(name)
        if optional:
            nullable.add(name)
        properties[name] = prop

    unknown = sorted(set(arg_docs) - set(params))
    if unknown:
        raise ToolDefinitionError(f"{where}: the docstring describes {', '.join(map(repr, unknown))}, "
                                  "which is not a parameter")
    parameters = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    return FunctionSchema(summary, parameters, frozenset(nullable))


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """(first paragraph as one line, {parameter: description}) of a Google-style docstring."""
    lines = doc.strip().splitlines()
    summary = []
    for line in lines:
        if not line.strip() or _ARGS_HEADER.match(line):
            break
        summary.append(line.strip())

    args: dict[str, str] = {}
    header_indent, entry_indent, current = None, None, None
    for line in lines:
        header = _ARGS_HEADER.match(line)
        if header_indent is None:
            if header:
                header_indent = len(header.group(1))
            continue
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent <= header_indent:  # the next section (Returns:, Raises:, ...)
            break
        entry = _ARG_LINE.match(line.strip())
        if entry and (entry_indent is None or indent <= entry_indent):
            entry_indent = indent
            current = entry.group(1)
            args[current] = entry.group(2).strip()
        elif current is not None:  # a continuation line of the current entry
            args[current] = f"{args[current]} {line.strip()}".strip()
    return " ".join(summary), args


def _strip_none(hint: Any) -> tuple[Any, bool]:
    """(X, True) for `X | None` / Optional[X]; (hint, False) otherwise."""
    if get_origin(hint) in (Union, types.UnionType):
        args = get_args(hint)
        rest = [a for a in args if a is not type(None)]
        if len(rest) < len(args):
            return (rest[0] if len(rest) == 1 else Union[tuple(rest)]), True
    return hint, False


def _json_type(hint: Any) -> dict:
    """JSON schema of one hint; TypeError when it is not supported."""
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        if not args or not all(type(v) in _SCALARS for v in args):
            raise TypeError(hint)
        kinds = {_SCALARS[type(v)] for v in args}
        return ({"type": kinds.pop()} if len(kinds) == 1 else {}) | {"enum": list(args)}
    if hint is list or origin is list:
        return {"type": "array", "items": _json_type(args[0])} if args else {"type": "array"}
    if hint is dict or origin is dict:
        if not args:
            return {"type": "object"}
        if args[0] is not str:  # JSON object keys are strings
            raise TypeError(hint)
        return {"type": "object", "additionalProperties": _json_type(args[1])}
    raise TypeError(hint)


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
        return True
    except (TypeError, ValueError):
        return False


def _show(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
