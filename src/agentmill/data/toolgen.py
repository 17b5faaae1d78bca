"""General tool-use records, generated (no downloaded datasets) from the tools of data/tool_catalog.py.

Each record offers one to four tools and asks one question. When an offered tool fits, the
trained answer is that tool's call with exactly the arguments the question says: values
converted to the schema's type ("five" -> 5, "4.5%" -> 4.5, "$1,250" -> 1250, "price low" ->
"price_low"), optional parameters left out when the question does not say them (their default
applies), nested objects filled field by field. When no offered tool fits (the question asks for
a tool that is not offered), the trained answer says so in words and calls nothing. When the
fitting tool is offered but the question leaves out every value it requires ("Can you book a
car service appointment?"), the trained answer asks for them and calls nothing: a call would
have to invent them.

`pool="train"` draws from TRAIN_TOOLS, `pool="unseen"` from UNSEEN_TOOLS only: held-out records of
tools, names and domains that training never shows. Deterministic for a seed.
"""

from __future__ import annotations

import dataclasses
import random
import re

from agentmill.data.tool_catalog import POOLS, TRAIN_TOOLS, UNSEEN_TOOLS, Param, Tool

_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
          "twelve"]
_OPTIONAL = re.compile(r"\[([^\[\]]*)\]")
_SLOT = re.compile(r"\{([a-z_]+)(?:\.([a-z_]+))?\}")
SYSTEMS = [None, "You are a helpful assistant.", "You are a helpful assistant with access to tools.",
           "Use a tool when one of the offered tools fits the request; otherwise answer directly."]


def tool_pool(pool: str) -> list[Tool]:
    if pool not in ("train", "unseen"):
        raise ValueError(f"tool pool must be 'train' or 'unseen', not {pool!r}")
    return TRAIN_TOOLS if pool == "train" else UNSEEN_TOOLS


def _say_number(p: Param, rng: random.Random) -> tuple[float | int, str]:
    lo, hi = p.values
    if p.say == "pct":
        value = rng.randrange(int(lo * 2), int(hi * 2) + 1) / 2
        value = int(value) if value == int(value) else value
        return value, f"{value}%" if rng.random() < 0.6 else f"{value} percent"
    if p.say == "money":
        value = rng.randint(int(lo), int(hi))
        if hi <= 100 and rng.random() < 0.4:
            value = round(value + rng.choice([0.25, 0.5, 0.75, 0.99]), 2)
        text = f"{value:,}" if rng.random() < 0.5 else str(value)
        return value, f"${text}" if rng.random() < 0.7 else f"{text} dollars"
    if isinstance(lo, float) or rng.random() < 0.3:
        value = round(rng.uniform(lo, hi), 1)
    else:
        value = rng.randint(int(lo), int(hi))
    if p.say.startswith("unit:"):
        return value, f"{value} {p.say[5:]}"
    return value, str(value)


def _draw(p: Param, rng: random.Random) -> tuple[object, str]:
    """(the value the call carries, how the question says it)."""
    if p.type == "boolean":
        return (not p.default), ""
    if p.enum:
        value = rng.choice([v for v in p.values if v != p.default] or list(p.values))
        return value, value.replace("_", " ")
    if p.type == "string":
        value = rng.choice([v for v in POOLS[p.values] if v != p.default])
        return value, value
    if p.type == "integer":
        value = rng.randint(*p.values)
        if p.default is not None and value == p.default:
            value = value + 1 if value < p.values[1] else value - 1
        said = _WORDS[value] if value <= 12 and rng.random() < 0.3 else str(value)
        return value, said
    if p.type == "number":
        return _say_number(p, rng)
    if p.type == "array":
        items = rng.sample(POOLS[p.values], rng.choice([2, 2, 3]))
        return items, (", ".join(items[:-1]) + " and " + items[-1])
    raise ValueError(f"cannot draw a value for {p.type} parameter {p.name}")


def fill(tool: Tool, ask: str, rng: random.Random) -> tuple[str, dict]:
    """A question from `ask` and the arguments of its exact call."""
    params = {p.name: p for p in tool.params}
    said: dict[str, object] = {}

    def slot(match: re.Match) -> str:
        name, sub = match.group(1), match.group(2)
        p = params[name]
        if sub is not None:
            field = next(f for f in p.fields if f.name == sub)
            value, text = _draw(field, rng)
            said.setdefault(name, {})[sub] = value
            return text
        value, text = _draw(p, rng)
        said[name] = value
        return text

    def optional(match: re.Match) -> str:
        return _SLOT.sub(slot, match.group(1)) if rng.random() < 0.5 else ""

    question = _SLOT.sub(slot, _OPTIONAL.sub(optional, ask))
    arguments = {p.name: said[p.name] for p in tool.params if p.name in said}
    return re.sub(r"\s+([?.,!])", r"\1", question).strip(), arguments


_VERBS = {"get": ["fetch", "lookup", "retrieve"], "find": ["search", "locate"], "search": ["find", "query"],
          "book": ["reserve", "schedule"], "create": ["new", "make"], "add": ["insert", "append"],
          "set": ["update", "configure"], "send": ["submit", "dispatch"], "list": ["show", "get"]}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)


def _variant(name: str, rng: random.Random, verbs: bool = False) -> str:
    """Another spelling of a tool or parameter name, so that training teaches reading the offered
    schema (the call must use its names exactly) rather than remembering the catalog's."""
    roll = rng.random()
    verb, _, rest = name.partition("_")
    if verbs and rest and verb in _VERBS and roll < 0.3:
        return f"{rng.choice(_VERBS[verb])}_{rest}"
    if roll < 0.5 and "_" in name:
        return _camel(name)
    if roll < 0.65:
        return name + rng.choice(["_value", "_name", "_input"]) if not verbs else name + "_tool"
    return name


def _respelled(tool: Tool, rng: random.Random) -> tuple[Tool, dict[str, str]]:
    """`tool` with its name and top-level parameter names spelled anew; the old -> new names."""
    names = {p.name: _variant(p.name, rng) for p in tool.params}
    if len(set(names.values())) < len(names):  # a clash: keep the catalog's spelling
        names = {p.name: p.name for p in tool.params}
    params = [dataclasses.replace(p, name=names[p.name]) for p in tool.params]
    return dataclasses.replace(tool, name=_variant(tool.name, rng, verbs=True), params=params), names


def _offer(tool: Tool, pool: list[Tool], rng: random.Random, fits: bool) -> list[Tool]:
    """The tools offered with a question for `tool`: itself (when it fits) and distractors, one
    of them from its own domain when there is one."""
    others = [t for t in pool if t.name != tool.name and (fits or t.domain != tool.domain)]
    siblings = [t for t in others if t.domain == tool.domain]
    n_extra = rng.choice([0, 1, 1, 2, 2, 3]) if fits else rng.choice([1, 2, 2, 3])
    extra = rng.sample(siblings, 1) if siblings and n_extra and rng.random() < 0.5 else []
    extra += rng.sample([t for t in others if t not in extra], min(n_extra - len(extra), len(others) - len(extra)))
    offered = ([tool] if fits else []) + extra
    rng.shuffle(offered)
    return offered


def _cannot(offered: list[Tool]) -> str:
    can = [_lower_first(t.description.rstrip(".")) for t in offered]
    listed = can[0] if len(can) == 1 else ", ".join(can[:-1]) + " or " + can[-1]
    return f"{_CANNOT} I can {listed}."


_CANNOT = "I can't do that with the tools I have here."
_ASK = "I can do that. Please tell me: "
_ASKING = ["Can you {what}?", "I'd like to {what}.", "Please {what}.", "I need to {what}."]


def answer_kind(record: dict | object) -> str:
    """What a generated record's answer does: "call", "none_fits" (no offered tool fits) or
    "ask" (the fitting tool is offered, its required values are not said)."""
    messages = record["messages"] if isinstance(record, dict) else record.messages
    answer = messages[-1]
    if answer.get("tool_calls"):
        return "call"
    return "ask" if str(answer.get("content") or "").startswith(_ASK) else "none_fits"


def _lower_first(text: str) -> str:
    return text[0].lower() + text[1:]


def _asks_for_values(tool: Tool, rng: random.Random) -> tuple[str, str]:
    """A question for `tool` that says none of its required values, and the answer that asks for them."""
    question = rng.choice(_ASKING).format(what=_lower_first(tool.description.rstrip(".")))
    needed = [_lower_first(p.description.split(",")[0]) for p in tool.params if p.required]
    listed = needed[0] if len(needed) == 1 else ", ".join(needed[:-1]) + " and " + needed[-1]
    return question, f"{_ASK}{listed}."


def general_tool_records(n: int, pool: str = "train", seed: int = 0, none_fits: float | None = None,
                         ask: float = 0.1) -> list[dict]:
    """`n` distinct chat records (JSONL-ready dicts with their own `tools`); a `none_fits` share of
    them offer no tool that fits (default: 0.3 for training, 0.2 held out), an `ask` share offer
    the fitting tool but say none of its required values (`answer_kind`). Training records
    spell tool and parameter names variously (get_weather, fetch_weather, getWeather; city,
    cityName), so the skill learnt is to copy the offered schema's names."""
    tools = tool_pool(pool)
    respell = pool == "train"
    if none_fits is None:
        none_fits = 0.3 if pool == "train" else 0.2
    n_ask = round(n * ask)
    records = _call_records(n - n_ask, tools, random.Random(f"{pool}-{seed}"), none_fits, respell, pool)
    return records + _ask_records(n_ask, tools, random.Random(f"{pool}-{seed}-ask"), respell, pool)


def _draw_tool(hand: list[Tool], made: list[Tool], rng: random.Random) -> Tool:
    """The hand-written tools as often as the record-keeping ones made by rule."""
    return rng.choice(made if made and rng.random() < 0.5 else hand)


def _record(question: str, answer: dict, offered: list[Tool], rng: random.Random) -> dict:
    system = rng.choice(SYSTEMS)
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question}, answer]
    return {"tools": [t.schema() for t in offered], "messages": messages}


def _by_origin(tools: list[Tool]) -> tuple[list[Tool], list[Tool]]:
    """(the hand-written tools, the record-keeping ones made by rule)."""
    return ([t for t in tools if not t.domain.startswith("records_")],
            [t for t in tools if t.domain.startswith("records_")])


def _distinct(n: int, draw, what: str) -> list[dict]:
    """`n` records from `draw()` -> (key, build), keeping the first of each key; `build()` runs
    (and draws the rest of the record) only for a new key."""
    records, seen = [], set()
    for _ in range(50 * n):
        if len(records) == n:
            break
        key, build = draw()
        if key not in seen:
            seen.add(key)
            records.append(build())
    if len(records) < n:
        raise ValueError(f"could not make {n} distinct {what}")
    return records


def _ask_records(n: int, tools: list[Tool], rng: random.Random, respell: bool, pool: str) -> list[dict]:
    hand, made = _by_origin([t for t in tools if any(p.required for p in t.params)])

    def draw():
        tool = _draw_tool(hand, made, rng)
        question, reply = _asks_for_values(tool, rng)
        offered = _offer(tool, tools, rng, fits=True)
        if respell:
            offered = [_respelled(t, rng)[0] for t in offered]
        return ((question, tuple(t.name for t in offered)),
                lambda: _record(question, {"role": "assistant", "content": reply}, offered, rng))

    return _distinct(n, draw, f"asking records from the {pool} tools")


def _call_records(n: int, tools: list[Tool], rng: random.Random, none_fits: float, respell: bool,
                  pool: str) -> list[dict]:
    hand, made = _by_origin(tools)

    def draw():
        tool = _draw_tool(hand, made, rng)
        question, arguments = fill(tool, rng.choice(tool.asks), rng)
        fits = rng.random() >= none_fits
        offered = _offer(tool, tools, rng, fits)
        if respell:
            spelled = [_respelled(t, rng) for t in offered]
            if fits:
                tool, names = spelled[offered.index(tool)]
                arguments = {names[k]: v for k, v in arguments.items()}
            offered = [t for t, _ in spelled]
        if fits:
            answer = {"role": "assistant", "content": None,
                      "tool_calls": [{"type": "function", "function": {"name": tool.name, "arguments": arguments}}]}
        else:
            answer = {"role": "assistant", "content": _cannot(offered)}
        return (question, tuple(t.name for t in offered)), lambda: _record(question, answer, offered, rng)

    return _distinct(n, draw, f"records from the {pool} tools")


def general_tool_use(n: int, pool: str = "train", seed: int = 0, none_fits: float | None = None,
                     ask: float = 0.1) -> list:
    """`general_tool_records` as validated chat Records (sources "general-tool-use/POOL:N")."""
    from agentmill.data.formats import PARSERS, Record

    return [Record(source=f"general-tool-use/{pool}:{i}", **PARSERS["chat"](obj))
            for i, obj in enumerate(general_tool_records(n, pool, seed, none_fits, ask), start=1)]
