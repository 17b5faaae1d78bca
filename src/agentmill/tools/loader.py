"""Import the user's own tools: a .py file (e.g. next to the recipe) or a dotted module name."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
import traceback
from pathlib import Path
from types import ModuleType

from agentmill.tools.errors import ToolDefinitionError
from agentmill.tools.registry import Tool


def import_tools(spec: str, base_dir: Path | None = None) -> list[Tool]:
    """Every `Tool` object at the top level of the module, in definition order."""
    if spec.endswith(".py") or "/" in spec or os.sep in spec:
        path = Path(spec).expanduser()
        if not path.is_absolute():
            path = Path(base_dir or Path.cwd()) / path
        path = path.resolve()
        if not path.is_file():
            raise ToolDefinitionError(f"tool module {path} does not exist")
        module, where = _import_file(path), str(path)
    else:
        module, where = _import_name(spec), f"tool module '{spec}'"
    tools = list({id(v): v for v in vars(module).values() if isinstance(v, Tool)}.values())
    if not tools:
        raise ToolDefinitionError(f"{where} defines no tools (decorate functions with @tool from agentmill.tools)")
    return tools


def _import_file(path: Path) -> ModuleType:
    # A name of its own per file, so that two recipes' tools.py never replace each other.
    stem = re.sub(r"\W", "_", path.stem)
    name = f"agentmill_user_tools.{stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ToolDefinitionError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and typing look the module up while it runs
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        sys.modules.pop(name, None)
        raise ToolDefinitionError(f"{path}:{err.lineno}: syntax error: {err.msg}") from None
    except Exception as err:
        sys.modules.pop(name, None)
        raise ToolDefinitionError(f"{_location(err, path)}: {_reason(err)}") from None
    return module


def _import_name(dotted: str) -> ModuleType:
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError as err:
        if err.name and dotted.startswith(err.name):
            raise ToolDefinitionError(f"tool module '{dotted}': no module named '{err.name}' (give a .py file "
                                      "relative to the recipe, or an importable dotted name)") from None
        raise ToolDefinitionError(f"tool module '{dotted}' ({_location(err)}): {_reason(err)}") from None
    except SyntaxError as err:
        raise ToolDefinitionError(f"{err.filename}:{err.lineno}: syntax error: {err.msg}") from None
    except Exception as err:
        raise ToolDefinitionError(f"tool module '{dotted}' ({_location(err)}): {_reason(err)}") from None


def _location(err: Exception, path: Path | None = None) -> str:
    """FILE:LINE of the innermost frame in `path` (or anywhere) where `err` was raised."""
    frames = traceback.extract_tb(err.__traceback__)
    if path is not None:
        frames = [f for f in frames if Path(f.filename) == path] or frames
    if not frames:
        return str(path or "?")
    return f"{frames[-1].filename}:{frames[-1].lineno}"


def _reason(err: Exception) -> str:
    if isinstance(err, ToolDefinitionError):
        return str(err)
    return f"could not import: {type(err).__name__}: {err}"
