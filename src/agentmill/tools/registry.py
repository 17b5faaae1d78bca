"""Tools: type-hinted Python functions the agent may call with JSON arguments, and their registry.

    @tool
    def loan_payment(principal: float, annual_rate_percent: float, years: int) -> dict:
        '''Monthly payment of an amortised loan.

        Args:
            principal: Amount borrowed.
            ...
        '''

A `Tool` is called like the function; `schema()` is its OpenAI tools entry; `run(arguments)`
validates JSON arguments against the schema, calls the function and returns the result as text
for the model. Arguments are never coerced: "30" is not an integer, and neither is 30.0.
"""

from __future__ import annotations

import copy
import difflib
import functools
import inspect
import json
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import jsonschema

from agentmill.tools.errors import (ToolArgumentError, ToolDefinitionError, ToolError, ToolExecutionError,
                                    UnknownToolError)
from agentmill.tools.schema import function_schema

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")  # what OpenAI-style tool names allow
_JSON_KINDS = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
               "array": "a list", "object": "an object", "null": "null"}

# JSON Schema counts 30.0 as an integer; a Python function annotated `int` should never get a float.
_STRICT_TYPES = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool))
_Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=_STRICT_TYPES)


class Tool:
    """A function the agent can call: name, description, JSON-schema parameters, validation."""

    def __init__(self, func: Callable, name: str | None = None):
        if isinstance(func, Tool):
            func = func.func
        self.func = func
        self.name = name or func.__name__
        if not _NAME.match(self.name):
            raise ToolDefinitionError(f"tool name '{self.name}' (function {func.__qualname__}): use letters, "
                                      "digits, _ and -, at most 64 characters")
        spec = function_schema(func, self.name)
        self.description = spec.description
        self.parameters = spec.parameters
        self._nullable = spec.nullable
        params = inspect.signature(func).parameters
        # `x: int | None` without a default: left out, it is called with None
        self._none_when_absent = [n for n in spec.nullable if params[n].default is params[n].empty]
        self._validator = _Validator(self.parameters)
        functools.update_wrapper(self, func)

    def __call__(self, *args, **kwargs):
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Tool {self.name}>"

    def schema(self) -> dict:
        """The OpenAI tools entry: {"type": "function", "function": {name, description, parameters}}."""
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": copy.deepcopy(self.parameters)}}

    def validate(self, arguments: dict | str) -> dict:
        """The arguments, checked against the schema (a JSON object text is decoded first).

        Raises ToolArgumentError listing every problem. `null` is accepted for an `X | None`
        parameter (the function gets None).
        """
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as err:
                raise ToolArgumentError(self.name, [f"arguments are not valid JSON ({err.msg})"]) from None
        if not isinstance(arguments, dict):
            raise ToolArgumentError(self.name, [f"arguments must be a JSON object, got {_describe(arguments)}"])
        props = self.parameters["properties"]
        problems = [f"missing required argument '{n}'" for n in self.parameters["required"] if n not in arguments]
        extra = [n for n in arguments if n not in props]
        if extra:
            problems.append(f"unknown argument{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))} "
                            f"(arguments: {', '.join(props) or 'none'})")
        checked = {k: v for k, v in arguments.items()
                   if k in props and not (v is None and k in self._nullable)}
        errors = sorted(self._validator.iter_errors(checked), key=lambda e: list(map(str, e.absolute_path)))
        problems += [_explain(e) for e in errors if e.absolute_path]  # top level is covered above
        if problems:
            raise ToolArgumentError(self.name, problems)
        return dict(arguments)

    def run(self, arguments: dict | str) -> str:
        """Validate, call, and return the result as text: a str as is, anything else as compact JSON."""
        kwargs = self.validate(arguments)
        for name in self._none_when_absent:
            kwargs.setdefault(name, None)
        try:
            result = self.func(**kwargs)
        except ToolExecutionError as err:
            raise ToolExecutionError(str(err) if err.tool else err.reason, self.name) from None
        except ToolError as err:
            raise ToolExecutionError(str(err), self.name) from None
        except ValueError as err:  # tools report bad values (a negative loan term) as ValueError
            raise ToolExecutionError(str(err) or "invalid value", self.name) from None
        except Exception as err:
            raise ToolExecutionError(f"{type(err).__name__}: {err}" if str(err) else type(err).__name__,
                                     self.name) from None
        if isinstance(result, str):
            return result
        try:
            return json.dumps(result, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError):
            raise ToolExecutionError(f"returned a {type(result).__name__}, which is not JSON", self.name) from None


def tool(func: Callable | str | None = None, *, name: str | None = None):
    """Make a `Tool` of a function: ``@tool``, ``@tool(name="lookup")`` or ``@tool("lookup")``."""
    if isinstance(func, str):
        func, name = None, func
    if func is None:
        return lambda f: Tool(f, name=name)
    return Tool(func, name=name)


class ToolRegistry:
    """Tools by name, in the order they were added."""

    def __init__(self, tools: Iterable[Tool] = ()):
        self._tools: dict[str, Tool] = {}
        self.confirm: set[str] = set()  # tools.confirm: calls held when an argument came from tool output
        for t in tools:
            self.add(t)

    def add(self, tool: Tool) -> Tool:
        if not isinstance(tool, Tool):
            raise ToolDefinitionError(f"{tool!r} is not a tool; decorate the function with @tool")
        known = self._tools.get(tool.name)
        if known is not None and known is not tool:
            raise ToolDefinitionError(f"two tools are named '{tool.name}': {_origin(known)} and {_origin(tool)}")
        self._tools[tool.name] = tool
        return tool

    def get(self, name: str) -> Tool:
        if name not in self._tools:
            raise UnknownToolError(f"unknown tool '{name}'{_hint(name, self.names())}")
        return self._tools[name]

    def names(self) -> list[str]:
        return list(self._tools)

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def subset(self, allowed: Iterable[str]) -> ToolRegistry:
        """A registry of just the `allowed` tools (a task's allow-list); unknown names are an error."""
        allowed = list(allowed)
        unknown = [n for n in allowed if n not in self._tools]
        if unknown:
            shown = ", ".join(f"'{n}'{_hint(n, self.names(), full=False)}" for n in unknown)
            raise UnknownToolError(f"unknown tool{'s' if len(unknown) > 1 else ''} in the allow-list: {shown} "
                                   f"(tools: {', '.join(self.names()) or 'none'})")
        subset = ToolRegistry(self._tools[n] for n in dict.fromkeys(allowed))
        subset.confirm = self.confirm & set(allowed)
        return subset

    def schemas(self, names: Iterable[str] | None = None) -> list[dict]:
        """OpenAI tools entries of `names` (default: all), ready for a chat template's `tools=`."""
        return [self.get(n).schema() for n in (self.names() if names is None else names)]

    def load_module(self, spec: str, base_dir: Path | None = None) -> list[Tool]:
        """Add every tool of a .py file (relative to `base_dir`) or dotted module; returns them."""
        from agentmill.tools.loader import import_tools

        return [self.add(t) for t in import_tools(spec, base_dir)]


def _explain(error: jsonschema.ValidationError) -> str:
    where = "argument '" + "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p)
                                   for i, p in enumerate(error.absolute_path)) + "'"
    if error.validator == "type":
        kinds = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        wanted = " or ".join(_JSON_KINDS.get(k, k) for k in kinds)
        return f"{where} must be {wanted}, got {_describe(error.instance)}"
    if error.validator == "enum":
        return f"{where} must be one of {', '.join(json.dumps(v) for v in error.validator_value)}, " \
               f"got {_describe(error.instance)}"
    return f"{where}: {error.message}"


def _describe(value: Any) -> str:
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "object",
            type(None): "null"}.get(type(value), type(value).__name__)
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return f"{kind} {text if len(text) <= 60 else text[:57] + '...'}" if value is not None else "null"


def _hint(name: str, known: list[str], full: bool = True) -> str:
    guess = difflib.get_close_matches(name, known, n=1)
    if guess:
        return f"; did you mean '{guess[0]}'?" if full else f" (did you mean '{guess[0]}'?)"
    return f" (tools: {', '.join(known) or 'none'})" if full else ""


def _origin(t: Tool) -> str:
    return f"{t.func.__module__}.{t.func.__qualname__}"
