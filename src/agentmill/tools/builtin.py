"""The built-in tools, fitted to a bank's advisor: arithmetic, loans, savings, documents, accounts.

calculator, loan_payment and compound_interest are always there; knowledge_search and
account_lookup need settings (a documents folder; a database) and exist only when given them.
There is no code-execution tool.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from agentmill.tools.calculator import calculator
from agentmill.tools.errors import ToolDefinitionError
from agentmill.tools.finance import compound_interest, loan_payment
from agentmill.tools.registry import ToolRegistry

# Built-in tools that take settings, and the setting each one needs.
SETTINGS = {"knowledge_search": "folder", "account_lookup": "database"}


def builtin_tools(settings: dict[str, dict] | None = None, base_dir: Path | None = None) -> ToolRegistry:
    """A registry of the built-ins, e.g. with settings ``{"knowledge_search": {"folder": "docs"},
    "account_lookup": {"database": "bank.sql"}}``; relative paths are relative to `base_dir`."""
    settings = settings or {}
    _check(settings)
    registry = ToolRegistry([calculator, loan_payment, compound_interest])
    if "knowledge_search" in settings:
        from agentmill.tools.knowledge import make_knowledge_search

        registry.add(make_knowledge_search(_path(settings["knowledge_search"]["folder"], base_dir)))
    if "account_lookup" in settings:
        from agentmill.tools.accounts import make_account_lookup

        registry.add(make_account_lookup(_path(settings["account_lookup"]["database"], base_dir)))
    return registry


def _check(settings: dict[str, dict]) -> None:
    for name, values in settings.items():
        if name not in SETTINGS:
            guess = difflib.get_close_matches(name, list(SETTINGS), n=1)
            hint = f"; did you mean '{guess[0]}'?" if guess else f" (tools with settings: {', '.join(SETTINGS)})"
            raise ToolDefinitionError(f"tools.settings: '{name}' is not a built-in tool with settings{hint}")
        key = SETTINGS[name]
        values = values if isinstance(values, dict) else {}
        unknown = [k for k in values if k != key]
        if unknown or not isinstance(values.get(key), (str, Path)):
            raise ToolDefinitionError(f"tools.settings.{name}: takes exactly one setting, '{key}' (a path)"
                                      + (f"; unknown: {', '.join(map(repr, unknown))}" if unknown else ""))


def _path(value: str | Path, base_dir: Path | None) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() or base_dir is None else Path(base_dir) / path
