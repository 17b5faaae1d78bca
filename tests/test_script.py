"""Self-checking scripts (eval/script.py): loading with clear errors, and each expectation judged."""

from pathlib import Path

import pytest

from agentmill.agent.agent import TurnResult, Usage
from agentmill.agent.steps import AnswerStep, ModelStep, RouteStep, ToolResultStep, UserStep
from agentmill.errors import AgentmillError
from agentmill.eval.script import Expect, check_turn, load_script
from agentmill.tools.finance import loan_payment

EXAMPLE_SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "finance-advisor" / "demo_chat.yaml"


def _result(answer, task="finance_advisor", call=None, stopped=None):
    steps = [UserStep("q"), RouteStep(task)]
    if call:
        steps += [ModelStep("", [{"id": "c1", "type": "function", "function": call}]),
                  ToolResultStep("c1", call["name"], "{}")]
    steps.append(AnswerStep(answer, task))
    return TurnResult(answer, task, steps, Usage(), stopped)


LOAN = Expect(task="finance_advisor", tool="loan_payment",
              arguments={"principal": 20000, "annual_rate_percent": 6, "years": 5}, answer_number=386.66)


def test_a_turn_that_shows_everything_passes():
    call = {"name": "loan_payment", "arguments": {"principal": 20000.0, "annual_rate_percent": 6, "years": 5}}
    checks = check_turn(LOAN, _result("Your monthly payment is $386.66.", call=call))
    assert [c.what for c in checks] == ["finished", "task", "tool", "arguments", "number"]
    assert all(c.ok for c in checks)


@pytest.mark.parametrize("answer, task, call, stopped, failing", [
    ("It is $386.66.", "customer_service", {"name": "loan_payment", "arguments": {
        "principal": 20000, "annual_rate_percent": 6, "years": 5}}, None, ["task"]),
    ("It is $386.66.", "finance_advisor", {"name": "loan_payment", "arguments": {
        "principal": 20000, "annual_rate_percent": 6, "years": 6}}, None, ["arguments"]),
    ("$200.00 per year", "finance_advisor", None, None, ["tool", "arguments", "number"]),
    ("It is $386.66.", "finance_advisor", {"name": "calculator", "arguments": {"expression": "1"}}, None,
     ["tool", "arguments"]),
    ("stopped: budget", "finance_advisor", {"name": "loan_payment", "arguments": {
        "principal": 20000, "annual_rate_percent": 6, "years": 5}}, "steps", ["finished", "number"]),
])
def test_each_miss_is_named(answer, task, call, stopped, failing):
    checks = check_turn(LOAN, _result(answer, task, call, stopped))
    assert [c.what for c in checks if not c.ok] == failing


def test_no_tool_and_answer_texts():
    expect = Expect(tool="none", answer_has=["Dana"], task=["customer_service", "finance_advisor"])
    assert all(c.ok for c in check_turn(expect, _result("Your name is dana.", "customer_service")))
    called = _result("Your name is Dana.", call={"name": "account_lookup", "arguments": {}})
    assert [c.what for c in check_turn(expect, called) if not c.ok] == ["tool"]
    assert [c.what for c in check_turn(expect, _result("I do not know.")) if not c.ok] == ["answer"]


def test_the_example_script_expects_what_the_tool_computes():
    turns = load_script(EXAMPLE_SCRIPT)
    loan = turns[-1].expect
    assert loan.tool == "loan_payment"
    assert loan.answer_number == loan_payment(**loan.arguments)["monthly_payment"]
    assert [t.expect.task for t in turns[1:]] == ["customer_service", None, "finance_advisor"]


@pytest.mark.parametrize("text, message", [
    ("just text\n", "a non-empty YAML list"),
    ("- user: hi\n- user: there\n  expect: {tol: x}\n", "turn 2: expect.tol: Extra inputs"),
    ("- expect: {}\n", "turn 1: user: Field required"),
    ("- user: [unclosed\n", "cannot read the script"),
])
def test_bad_scripts_name_the_file_and_turn(tmp_path, text, message):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(AgentmillError) as err:
        load_script(path)
    assert str(path) in str(err.value) and message in str(err.value)
