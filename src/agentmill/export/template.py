"""The tool-aware chat template an export ships: what `data.render.render` prints, as Jinja.

A base template that knows no tools (SmolLM2's) is what agentmill trains with, by rewriting the
messages first (`data.render.to_template_messages`: Hermes-style ``<tool_call>`` blocks, tool
results in ``<tool_response>``, the tools described in the system message). Engines that apply
the template themselves (transformers, vLLM, llama.cpp's Jinja, TGI) need that rewrite inside the
template, so the export prepends it as a Jinja prelude that rebuilds ``messages`` and then runs the
base template unchanged. A template that already knows ``tool_calls`` ships as it is.

Rendering through the exported template gives the same text as the run's own rendering (tested):
the one-rendering invariant holds outside agentmill too.
"""

from __future__ import annotations

from agentmill.data.render import TOOLS_PROMPT, _template

# Jinja of `describe_tool` / `_type_of`, and of the message rewrite in `to_template_messages`.
# Every tag trims whitespace on both sides: the prelude prints nothing.
_PRELUDE = r"""
{%- macro am_type(s) -%}
{%- if s.enum is defined -%}{{ s.enum | map('tojson') | join('|') }}
{%- elif s.type is not defined -%}any
{%- elif s.type == 'array' -%}list[{{ am_type(s['items'] if s['items'] is defined and s['items'] else {}) }}]
{%- elif s.type is string -%}{{ s.type }}
{%- else -%}{{ s.type | join('|') }}
{%- endif -%}
{%- endmacro -%}
{%- macro am_text(c) -%}
{%- if c is none or c is not defined -%}
{%- elif c is string -%}{{ c }}
{%- else -%}{%- for p in c -%}{%- if p.text is defined and p.text -%}{{ p.text }}{%- endif -%}{%- endfor -%}
{%- endif -%}
{%- endmacro -%}
{%- set am = namespace(msgs=[]) -%}
{%- for m in messages -%}
{%- set c = am_text(m.content) -%}
{%- if m.role == 'assistant' and m.tool_calls -%}
{%- set calls = namespace(parts=[c] if c else []) -%}
{%- for call in m.tool_calls -%}
{%- set fn = call.function if call.function is defined else call -%}
{%- set args = fn.arguments if fn.arguments is defined else {} -%}
{%- set body = '{"name": ' ~ (fn.name | tojson) ~ ', "arguments": ' ~ (args if args is string else args | tojson) ~ '}' -%}
{%- set calls.parts = calls.parts + ['<tool_call>\n' ~ body ~ '\n</tool_call>'] -%}
{%- endfor -%}
{%- set c = calls.parts | join('\n') -%}
{%- elif m.role == 'tool' -%}
{%- set c = '<tool_response>\n' ~ c ~ '\n</tool_response>' -%}
{%- endif -%}
{%- set am.msgs = am.msgs + [{'role': m.role, 'content': c}] -%}
{%- endfor -%}
{%- if tools -%}
{%- set lines = namespace(items=[]) -%}
{%- for t in tools -%}
{%- set fn = t.function if t.function is defined else t -%}
{%- set params = fn.parameters if fn.parameters is defined and fn.parameters else {} -%}
{%- set required = params.required if params.required is defined and params.required else [] -%}
{%- set parts = namespace(args=[], notes=[]) -%}
{%- set props = params.properties if params.properties is defined and params.properties else {} -%}
{%- for name, schema in props.items() -%}
{%- set arg = name ~ (': ' if name in required else '?: ') ~ am_type(schema) -%}
{%- if schema.default is defined -%}{%- set arg = arg ~ ' = ' ~ (schema.default | tojson) -%}{%- endif -%}
{%- set parts.args = parts.args + [arg] -%}
{%- if schema.description is defined and schema.description -%}
{%- set parts.notes = parts.notes + [name ~ ': ' ~ schema.description] -%}
{%- endif -%}
{%- endfor -%}
{%- set line = fn.name ~ '(' ~ (parts.args | join(', ')) ~ ')' -%}
{%- if fn.description is defined and fn.description -%}{%- set line = line ~ ' - ' ~ fn.description -%}{%- endif -%}
{%- if parts.notes -%}{%- set line = line ~ ' [' ~ (parts.notes | join('; ')) ~ ']' -%}{%- endif -%}
{%- set lines.items = lines.items + [line] -%}
{%- endfor -%}
{%- set described = __TOOLS_HEAD__ ~ (lines.items | join('\n')) ~ __TOOLS_TAIL__ -%}
{%- if am.msgs and am.msgs[0].role == 'system' -%}
{%- set am.msgs = [{'role': 'system', 'content': am.msgs[0].content ~ '\n\n' ~ described}] + am.msgs[1:] -%}
{%- else -%}
{%- set am.msgs = [{'role': 'system', 'content': described}] + am.msgs -%}
{%- endif -%}
{%- endif -%}
{%- set messages = am.msgs -%}
""".strip()


def _jinja_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def tool_aware_template(tokenizer, system: str | None = None) -> str:
    """The chat template to ship with `tokenizer`'s model: its own when it knows tool calls,
    else the base template behind the prelude that writes tool use the way agentmill trains it.

    `system` (the task's prompt) is used when a conversation brings no system message of its own,
    so the exported model is the task without the caller knowing the prompt it was trained with."""
    base = _template(tokenizer)
    default = ("{%- if not (messages and messages[0].role == 'system') -%}{%- set messages = [{'role': 'system', "
               f"'content': {_jinja_string(system)}}}] + messages -%}}{{%- endif -%}}") if system else ""
    if "tool_calls" in base:
        return default + base
    head, tail = TOOLS_PROMPT.split("{tools}")
    prelude = _PRELUDE.replace("__TOOLS_HEAD__", _jinja_string(head.replace("{{", "{").replace("}}", "}")))
    prelude = prelude.replace("__TOOLS_TAIL__", _jinja_string(tail.replace("{{", "{").replace("}}", "}")))
    return default + prelude + base
