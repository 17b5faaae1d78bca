"""The tool layer: schemas from type hints, argument validation, the built-ins, module loading."""

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import pytest

from agentmill.errors import AgentmillError
from agentmill.tools import (Tool, ToolArgumentError, ToolDefinitionError, ToolExecutionError, ToolRegistry,
                             UnknownToolError, builtin_tools, tool)
from agentmill.tools import knowledge
from agentmill.tools.accounts import make_account_lookup, open_readonly, prepare_database
from agentmill.tools.calculator import evaluate
from agentmill.tools.finance import compound_interest, loan_payment
from agentmill.tools.knowledge import make_knowledge_search
from agentmill.tools.setup import registry_from_spec

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "finance-advisor"


@tool
def find_orders(customer: str, status: Literal["open", "shipped"] = "open", limit: int | None = None,
                tags: Optional[list[str]] = None, min_total: float = 0.5, urgent: bool = False) -> list:
    """Find a customer's orders.

    Longer explanation that the model does not need.

    Args:
        customer: Customer name,
            as printed on the invoice.
        status (str): Order status.
        limit: At most this many orders.
        tags: Only orders with all of these tags.
    """
    return [customer, status, limit, tags, min_total, urgent]


# ---------------------------------------------------------------- schema

def test_schema_from_type_hints_and_docstring():
    assert find_orders.schema() == {"type": "function", "function": {
        "name": "find_orders",
        "description": "Find a customer's orders.",
        "parameters": {
            "type": "object",
            "properties": {
                "customer": {"type": "string", "description": "Customer name, as printed on the invoice."},
                "status": {"type": "string", "enum": ["open", "shipped"], "description": "Order status.",
                           "default": "open"},
                "limit": {"type": "integer", "description": "At most this many orders."},
                "tags": {"type": "array", "items": {"type": "string"},
                         "description": "Only orders with all of these tags."},
                "min_total": {"type": "number", "default": 0.5},
                "urgent": {"type": "boolean", "default": False},
            },
            "required": ["customer"],
            "additionalProperties": False,
        }}}
    assert isinstance(find_orders, Tool) and find_orders("Ann") == ["Ann", "open", None, None, 0.5, False]


def test_decorator_with_a_name():
    @tool(name="lookup-v2")
    def lookup(key: str) -> str:
        """Look a key up."""
        return key.upper()

    assert lookup.name == "lookup-v2" and lookup.schema()["function"]["name"] == "lookup-v2"
    assert lookup.run({"key": "ab"}) == "AB"


def test_definition_errors_name_the_function_and_parameter():
    def no_hint(x):
        """Doc."""

    def unsupported(x: set[int]):
        """Doc."""

    def undocumented(x: int):
        pass

    def stray_doc(x: int):
        """Doc.

        Args:
            y: not a parameter.
        """

    with pytest.raises(ToolDefinitionError, match=r"tool 'no_hint' .*no_hint\): parameter 'x' has no type hint"):
        tool(no_hint)
    with pytest.raises(ToolDefinitionError, match=r"parameter 'x' has the unsupported type set\[int\] \(supported"):
        tool(unsupported)
    with pytest.raises(ToolDefinitionError, match="needs a docstring"):
        tool(undocumented)
    with pytest.raises(ToolDefinitionError, match="describes 'y', which is not a parameter"):
        tool(stray_doc)
    assert issubclass(ToolDefinitionError, AgentmillError)


# ---------------------------------------------------------------- validation and running

@pytest.mark.parametrize("arguments, message", [
    ({}, "find_orders: missing required argument 'customer'"),
    ({"customer": "Ann", "limit": "3"}, "find_orders: argument 'limit' must be an integer, got string \"3\""),
    ({"customer": "Ann", "limit": 3.0}, "find_orders: argument 'limit' must be an integer, got number 3.0"),
    ({"customer": 7}, "find_orders: argument 'customer' must be a string, got integer 7"),
    ({"customer": "Ann", "urgent": 1}, "find_orders: argument 'urgent' must be true or false, got integer 1"),
    ({"customer": "Ann", "page": 2}, "find_orders: unknown argument 'page' "
                                     "(arguments: customer, status, limit, tags, min_total, urgent)"),
    ({"customer": "Ann", "status": "lost"},
     "find_orders: argument 'status' must be one of \"open\", \"shipped\", got string \"lost\""),
    ({"customer": "Ann", "tags": ["a", 2]}, "find_orders: argument 'tags[1]' must be a string, got integer 2"),
    ({"limit": "x", "extra": 1}, "find_orders: missing required argument 'customer'; unknown argument 'extra' "
                                 "(arguments: customer, status, limit, tags, min_total, urgent); "
                                 "argument 'limit' must be an integer, got string \"x\""),
    ("[1]", "find_orders: arguments must be a JSON object, got list [1]"),
    ("{bad", "find_orders: arguments are not valid JSON (Expecting property name enclosed in double quotes)"),
])
def test_validation_errors_are_readable(arguments, message):
    with pytest.raises(ToolArgumentError) as err:
        find_orders.validate(arguments)
    assert str(err.value) == message


def test_validation_accepts_ints_for_numbers_null_for_optional_and_json_text():
    assert find_orders.validate({"customer": "Ann", "min_total": 3, "limit": None}) == \
        {"customer": "Ann", "min_total": 3, "limit": None}
    assert find_orders.validate('{"customer": "Ann"}') == {"customer": "Ann"}
    assert find_orders.run({"customer": "Ann", "limit": 2, "tags": ["x"]}) == '["Ann","open",2,["x"],0.5,false]'


def test_exceptions_inside_a_tool_become_one_line_errors():
    @tool
    def broken(key: str) -> dict:
        """Always fails."""
        return {}[key]

    @tool
    def refuses(n: int) -> int:
        """Refuses with a reason."""
        raise ToolExecutionError(f"no item {n}")

    with pytest.raises(ToolExecutionError) as err:
        broken.run({"key": "k"})
    assert str(err.value) == "broken: KeyError: 'k'" and "Traceback" not in str(err.value)
    with pytest.raises(ToolExecutionError, match=r"^refuses: no item 4$"):
        refuses.run({"n": 4})


# ---------------------------------------------------------------- calculator

@pytest.mark.parametrize("expression, value", [
    ("1 + 2 * 3", 7), ("(1200 * 0.035) / 12", 3.5), ("10 / 4", 2.5), ("10 / 2", 5), ("7 // 2", 3),
    ("7 % 4", 3), ("2 ** 10", 1024), ("-3 + +5", 2), ("0.1 + 0.2", 0.3), ("sqrt(16)", 4),
    ("round(2 / 3, 4)", 0.6667), ("abs(-2.5)", 2.5), ("max(1, 7, 3) - min(4, 2)", 5), ("2 ** -2", 0.25),
    ("1 / 3", 0.3333333333), ("1_000 * 3", 3000),
])
def test_calculator_values(expression, value):
    result = evaluate(expression)
    assert result == value and type(result) is type(value)


@pytest.mark.parametrize("expression, reason", [
    ("x + 1", "names are not allowed ('x')"),
    ("(1).real", "attributes are not allowed"),
    ("__import__('os').system('true')", "only the functions round, abs, min, max, sqrt can be called"),
    ("(lambda: 1)()", "only the functions"),
    ("lambda: 1", "lambda is not allowed"),
    ("[i for i in range(9)]", "listcomp is not allowed"),
    ("'a' * 3", "'a' is not a number"),
    ("True + 1", "True is not a number"),
    ("2**10**10", "exponents above 1000 are not allowed"),
    ("999999999 ** 999", "the result is too large"),
    ("10.0 ** 400", "the result is too large"),
    ("1 / 0", "division by zero"),
    ("(-8) ** 0.5", "not a real number"),
    ("sqrt(-1)", "sqrt of a negative number"),
    ("2 ^ 8", "write ** (2**8)"),
    ("1,200 + 5", "thousands separators"),
    ("1 +", "is not an arithmetic expression"),
    ("1+" * 300 + "1", "longer than 500 characters"),
])
def test_calculator_refuses(expression, reason):
    with pytest.raises(ValueError) as err:
        evaluate(expression)
    assert reason in str(err.value)


def test_calculator_tool_reports_refusals_as_tool_errors():
    from agentmill.tools.calculator import calculator

    assert calculator.run({"expression": "2 * 21"}) == "42"
    with pytest.raises(ToolExecutionError, match=r"^calculator: names are not allowed \('os'\)"):
        calculator.run({"expression": "os"})


# ---------------------------------------------------------------- finance

def test_loan_payment_known_values():
    assert loan_payment(200000, 6, 30) == {"monthly_payment": 1199.10, "payments": 360, "total_paid": 431676.38,
                                           "total_interest": 231676.38}
    assert loan_payment(12000, 0, 1)["monthly_payment"] == 1000.00
    with pytest.raises(ToolExecutionError, match="^loan_payment: years must be greater than 0, got 0$"):
        loan_payment.run({"principal": 1000, "annual_rate_percent": 5, "years": 0})


def test_compound_interest_known_values():
    assert compound_interest(1000, 5, 10) == {"final_amount": 1647.01, "interest_earned": 647.01}
    assert compound_interest(1000, 5, 10, compounding="annually") == {"final_amount": 1628.89, "interest_earned": 628.89}
    assert compound_interest(1000, 5, 10, "quarterly")["final_amount"] == 1643.62
    with pytest.raises(ToolArgumentError, match="compounding"):
        compound_interest.run({"principal": 1000, "annual_rate_percent": 5, "years": 10, "compounding": "weekly"})
    with pytest.raises(ToolExecutionError, match="too large"):
        compound_interest.run({"principal": 1e300, "annual_rate_percent": 900, "years": 900})


# ---------------------------------------------------------------- account_lookup

@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A private AGENTMILL_HOME for the database and index caches of this module."""
    path = tmp_path_factory.mktemp("agentmill_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AGENTMILL_HOME", str(path))
        yield path


@pytest.fixture(scope="module")
def account_lookup(home):
    return make_account_lookup(EXAMPLE / "bank.sql")


def test_account_lookup_known_and_unknown_accounts(account_lookup):
    assert json.loads(account_lookup.run({"account_id": "NW-10234"})) == {
        "account_id": "NW-10234", "owner": "Maria Alvarez", "type": "checking", "balance": 2450.75,
        "currency": "USD", "status": "active", "opened": "2016-03-14"}
    assert account_lookup(" nw-10642 ")["status"] == "frozen"
    with pytest.raises(ToolExecutionError) as err:
        account_lookup.run({"account_id": "NW-99999"})
    assert str(err.value) == "account_lookup: no account NW-99999 (an account id is \"NW-\" then 5 digits)"


def test_account_database_is_built_once_and_opened_read_only(account_lookup, home):
    db = prepare_database(EXAMPLE / "bank.sql")
    assert db.parent == home / "db" and db.suffix == ".db" and [p.name for p in db.parent.iterdir()] == [db.name]
    with closing(open_readonly(db)) as con:
        assert con.execute("SELECT count(*) FROM accounts").fetchone() == (40,)
        assert con.execute("SELECT count(*) FROM customers").fetchone() == (25,)
        with pytest.raises(sqlite3.OperationalError, match="readonly|read-only"):
            con.execute("UPDATE accounts SET balance = 0")


def test_account_lookup_bad_database(tmp_path):
    with pytest.raises(ToolDefinitionError, match=r"database .*missing.db does not exist"):
        make_account_lookup(tmp_path / "missing.db")
    (tmp_path / "other.db").write_bytes(b"not sqlite at all" * 10)
    with pytest.raises(ToolDefinitionError, match=r"other.db is not a usable bank database"):
        make_account_lookup(tmp_path / "other.db")


# ---------------------------------------------------------------- knowledge_search

@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("index")


@pytest.fixture(scope="module")
def knowledge_search(index_dir):
    return make_knowledge_search(EXAMPLE / "knowledge", cache_dir=index_dir)


def test_knowledge_search_finds_the_right_document(knowledge_search):
    saturday = knowledge_search("when are you open on saturday")
    assert len(saturday) == 3 and saturday[0]["source"] == "saturday_hours.md"
    assert "On Saturday, Northwind Bank branches are open from 9 a.m. to 1 p.m." in saturday[0]["text"]
    assert saturday[0]["score"] > saturday[1]["score"] >= saturday[2]["score"]
    card = json.loads(knowledge_search.run({"query": "I lost my debit card", "k": 1}))
    assert [c["source"] for c in card] == ["lost_card.md"] and set(card[0]) == {"source", "text", "score"}
    with pytest.raises(ToolExecutionError, match="k must be between 1 and 10, got 11"):
        knowledge_search.run({"query": "fees", "k": 11})


def test_knowledge_search_reads_nothing_outside_its_folder(tmp_path):
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "passwords.md").write_text("# Passwords\nThe vault password is hunter2.")
    folder = tmp_path / "kb"
    (folder / "sub").mkdir(parents=True)
    (folder / "hours.md").write_text("# Hours\nWe open at 9 a.m. on weekdays.")
    (folder / "sub" / "inside.md").symlink_to(folder / "hours.md")  # a link within the folder is fine
    (folder / "leak.md").symlink_to(outside / "passwords.md")
    (folder / "linked").symlink_to(outside, target_is_directory=True)
    tool = make_knowledge_search(folder, cache_dir=tmp_path / "index")
    found = json.loads(tool.run({"query": "what is the vault password", "k": 10}))
    assert {r["source"] for r in found} <= {"hours.md", "sub/inside.md"}
    assert not any("hunter2" in r["text"] for r in found)
    for query in ("../secret/passwords.md", "/etc/passwd", "linked/passwords.md"):
        assert not any("hunter2" in r["text"] for r in json.loads(tool.run({"query": query, "k": 10})))


def test_knowledge_index_is_cached_and_not_embedded_again(knowledge_search, index_dir, monkeypatch):
    knowledge_search("overdraft fee")  # the index exists now
    [cached] = list(index_dir.iterdir())
    assert sorted(p.name for p in cached.iterdir()) == ["chunks.json", "vectors.npy"]
    vectors = np.load(cached / "vectors.npy", allow_pickle=False)
    chunks = json.loads((cached / "chunks.json").read_text())
    assert vectors.shape == (len(chunks), 384) and all(len(c["text"].split()) <= 120 for c in chunks)

    batches = []
    real = knowledge.embed
    monkeypatch.setattr(knowledge, "embed", lambda texts: batches.append(len(texts)) or real(texts))
    fresh = make_knowledge_search(EXAMPLE / "knowledge", cache_dir=index_dir)  # new tool, same documents
    assert fresh("How much is the overdraft fee?")[0]["source"] == "overdraft_fee.md"
    assert batches == [1]  # only the query was embedded; the chunks came from the cache


def test_split_chunks_keeps_headings_and_word_limit():
    text = "# Title\n\nShort one.\n\n" + " ".join(f"Sentence {i} has five words." for i in range(40))
    chunks = knowledge.split_chunks(text, max_words=50)
    assert chunks[0] == "# Title\nShort one."
    assert all(len(c.split()) <= 50 for c in chunks) and sum(len(c.split()) for c in chunks) == 4 + 200


# ---------------------------------------------------------------- registry and modules

def test_load_module_collects_every_tool(tmp_path):
    (tmp_path / "my_tools.py").write_text(
        "from agentmill.tools import tool\n\n"
        "@tool\n"
        "def fx_rate(base: str, quote: str) -> float:\n"
        "    '''Exchange rate between two currencies.'''\n"
        "    return 1.1 if (base, quote) == ('EUR', 'USD') else 1.0\n\n"
        "@tool(name='branch_finder')\n"
        "def find(city: str) -> list[str]:\n"
        "    '''Branches in a city.'''\n"
        "    return [city + ' Main St']\n\n"
        "def helper():\n"
        "    return 1\n")
    registry = ToolRegistry()
    loaded = registry.load_module("my_tools.py", base_dir=tmp_path)
    assert [t.name for t in loaded] == registry.names() == ["fx_rate", "branch_finder"]
    assert registry.get("fx_rate").run({"base": "EUR", "quote": "USD"}) == "1.1"


def test_load_module_errors_name_the_file(tmp_path):
    registry = ToolRegistry()
    with pytest.raises(ToolDefinitionError, match=r"tool module .*nowhere.py does not exist"):
        registry.load_module("nowhere.py", base_dir=tmp_path)
    (tmp_path / "broken.py").write_text("import os\n\nundefined_name + 1\n")
    with pytest.raises(ToolDefinitionError, match=r"broken.py:3: could not import: NameError: name 'undefined_name'"):
        registry.load_module(str(tmp_path / "broken.py"))
    (tmp_path / "syntax.py").write_text("def f(:\n")
    with pytest.raises(ToolDefinitionError, match=r"syntax.py:1: syntax error"):
        registry.load_module(str(tmp_path / "syntax.py"))
    (tmp_path / "untyped.py").write_text(
        "from agentmill.tools import tool\n\n@tool\ndef f(x):\n    '''Doc.'''\n")
    with pytest.raises(ToolDefinitionError, match=r"untyped.py:3: tool 'f' .*parameter 'x' has no type hint"):
        registry.load_module(str(tmp_path / "untyped.py"))
    (tmp_path / "empty.py").write_text("X = 1\n")
    with pytest.raises(ToolDefinitionError, match=r"empty.py defines no tools"):
        registry.load_module(str(tmp_path / "empty.py"))
    with pytest.raises(ToolDefinitionError, match=r"tool module 'no_such_pkg.tools': no module named 'no_such_pkg'"):
        registry.load_module("no_such_pkg.tools")


def test_unknown_tools_get_a_did_you_mean():
    registry = builtin_tools()
    assert registry.names() == ["calculator", "loan_payment", "compound_interest"]
    with pytest.raises(UnknownToolError, match=r"^unknown tool 'calculater'; did you mean 'calculator'\?$"):
        registry.get("calculater")
    with pytest.raises(UnknownToolError, match=r"unknown tools in the allow-list: 'loan_paymnt' \(did you mean "
                                                 r"'loan_payment'\?\), 'weather' \(tools: calculator, "):
        registry.subset(["calculator", "loan_paymnt", "weather"])
    assert registry.subset(["loan_payment", "calculator"]).names() == ["loan_payment", "calculator"]
    assert [s["function"]["name"] for s in registry.schemas(["compound_interest"])] == ["compound_interest"]
    registry.add(find_orders)
    registry.add(find_orders)  # the same tool twice is fine
    with pytest.raises(ToolDefinitionError, match="two tools are named 'find_orders'"):
        registry.add(tool(find_orders.func))


def test_builtin_settings_and_recipe_spec(home, tmp_path):
    spec = {"settings": {"account_lookup": {"database": "bank.sql"}, "knowledge_search": {"folder": "knowledge"}},
            "modules": []}
    registry = registry_from_spec(spec, base_dir=EXAMPLE)
    assert registry.names() == ["calculator", "loan_payment", "compound_interest", "knowledge_search",
                                "account_lookup"]
    with pytest.raises(ToolDefinitionError, match=r"'knowledge_serch' is not a built-in tool with settings; "
                                                  r"did you mean 'knowledge_search'\?"):
        builtin_tools({"knowledge_serch": {"folder": "docs"}}, EXAMPLE)
    with pytest.raises(ToolDefinitionError, match=r"tools.settings.account_lookup: takes exactly one setting, "
                                                  r"'database' \(a path\); unknown: 'db'"):
        builtin_tools({"account_lookup": {"db": "bank.sql"}}, EXAMPLE)
    with pytest.raises(ToolDefinitionError, match=r"document folder .*nope does not exist"):
        builtin_tools({"knowledge_search": {"folder": "nope"}}, tmp_path)



def test_optional_without_default_is_called_with_none_and_defaults_are_kept():
    @tool
    def page(*, size: int | None = 10, after: str | None) -> list:
        """One page of results."""
        return [size, after]

    assert page.parameters["required"] == []
    assert page.run({}) == "[10,null]"
    assert page.run({"size": None, "after": "x"}) == '[null,"x"]'


def test_tools_confirm_names_real_tools_and_follows_subsets():
    from agentmill.tools.setup import registry_from_spec

    registry = registry_from_spec({"confirm": ["calculator"]})
    assert registry.confirm == {"calculator"} and registry.subset(["calculator"]).confirm == {"calculator"}
    assert registry.subset([]).confirm == set()
    with pytest.raises(AgentmillError, match="unknown tool 'calculater'"):
        registry_from_spec({"confirm": ["calculater"]})
