"""Tool-call text as a model writes it, for the scripted-model agent tests (the `script` fixture of conftest.py)."""

from __future__ import annotations

import json


def call_text(name, arguments):
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": arguments})}\n</tool_call>'
