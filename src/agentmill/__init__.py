"""agentmill: turn an open LLM into a specialised agent."""

__version__ = "0.1.0"
