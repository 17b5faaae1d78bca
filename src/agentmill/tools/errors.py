"""Errors of the tool layer. Each message is one line fit for the user and for the model."""

from agentmill.errors import AgentmillError


class ToolError(AgentmillError):
    """Base class of every tool error."""


class ToolDefinitionError(ToolError):
    """A tool cannot be built or loaded: missing type hints, unsupported types, a bad module."""


class UnknownToolError(ToolError):
    """A tool name that no registered tool has."""


class ToolArgumentError(ToolError):
    """Arguments that do not match the tool's schema. `problems` lists each one."""

    def __init__(self, tool: str, problems: list[str]):
        self.tool = tool
        self.problems = problems
        super().__init__(f"{tool}: " + "; ".join(problems))


class ToolExecutionError(ToolError):
    """A tool ran and failed. Tools raise it with a reason; `Tool.run` adds the tool's name."""

    def __init__(self, reason: str, tool: str | None = None):
        self.reason = reason
        self.tool = tool
        super().__init__(f"{tool}: {reason}" if tool else reason)
