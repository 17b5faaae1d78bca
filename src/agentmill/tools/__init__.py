"""Tools the agent can call: the @tool decorator, the registry, and the built-ins.

Heavy parts (sentence-transformers, SQLite files) load only when a tool that needs them is made.
"""

from agentmill.tools.builtin import builtin_tools
from agentmill.tools.errors import (ToolArgumentError, ToolDefinitionError, ToolError, ToolExecutionError,
                                    UnknownToolError)
from agentmill.tools.registry import Tool, ToolRegistry, tool

__all__ = ["Tool", "ToolRegistry", "tool", "builtin_tools", "ToolError", "ToolDefinitionError",
           "ToolArgumentError", "ToolExecutionError", "UnknownToolError"]
