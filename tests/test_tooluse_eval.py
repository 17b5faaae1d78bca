"""Tool-use evaluation: which turns are scored, and how calls and answers are compared."""

from agentmill.data.formats import Record
from agentmill.eval.tooluse import headline_number, same_call, states_number, tool_cases


def call(name, **arguments):
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


LOOKUP = [
    {"role": "user", "content": "Hi, I'm Dana and I want to borrow $46,000."},
    {"role": "assistant", "content": "Hello Dana!"},
    {"role": "user", "content": "Check NW-10796 please."},
    {"role": "assistant", "content": None, "tool_calls": [call("account_lookup", account_id="NW-10796")]},
    {"role": "tool", "name": "account_lookup", "content": '{"account_id": "NW-10796", "balance": 12500.0}'},
    {"role": "assistant", "content": "The balance is $12500.00."},
    {"role": "user", "content": "How much do I want to borrow?"},
    {"role": "assistant", "content": "You want to borrow $46,000."},
]


def test_the_answer_scored_is_the_one_right_after_the_tool_result_not_the_last_turn():
    (case,) = tool_cases([Record(source="f:1", messages=LOOKUP)])
    assert case.call_prompt == LOOKUP[:3]
    assert case.gold_call["function"]["name"] == "account_lookup"
    assert case.answer_prompt == LOOKUP[:5]
    assert case.gold_answer == "The balance is $12500.00."
    assert case.number == 12500.0


def test_a_handed_over_conversation_is_scored_on_its_own_call_not_the_context():
    handoff = [dict(m) for m in LOOKUP[:6]]
    handoff[3]["weight"] = handoff[5]["weight"] = 0  # another task's turns: context only
    handoff += [{"role": "user", "content": "Monthly payment on $20,000 at 6% over 5 years?"},
                {"role": "assistant", "content": None, "tool_calls": [call("loan_payment", principal=20000)]},
                {"role": "tool", "name": "loan_payment", "content": '{"monthly_payment": 386.66}'},
                {"role": "assistant", "content": "$386.66 a month."}]
    (case,) = tool_cases([Record(source="f:1", messages=handoff)])
    assert case.gold_call["function"]["name"] == "loan_payment" and case.call_prompt == handoff[:7]
    assert case.number == 386.66 and case.gold_answer == "$386.66 a month."


def test_records_without_calls_are_skipped_and_answers_without_numbers_are_not_scored():
    plain = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    search = [{"role": "user", "content": "Hours?"},
              {"role": "assistant", "content": None, "tool_calls": [call("knowledge_search", query="Hours?")]},
              {"role": "tool", "name": "knowledge_search", "content": '[{"text": "9 to 5"}]'},
              {"role": "assistant", "content": "9 to 5."}]
    cases = tool_cases([Record(source="f:1", messages=plain), Record(source="f:2", messages=search)])
    assert len(cases) == 1 and cases[0].answer_prompt is None and cases[0].number is None


def test_calls_compare_names_and_arguments_numbers_as_numbers():
    gold = call("loan_payment", principal=20000, annual_rate_percent=6, years=5)
    assert same_call(call("loan_payment", years=5.0, principal=20000.0, annual_rate_percent=6), gold)
    assert not same_call(call("loan_payment", principal=20000, annual_rate_percent=6.5, years=5), gold)
    assert not same_call(call("compound_interest", principal=20000, annual_rate_percent=6, years=5), gold)
    assert not same_call(None, gold)


def test_numbers_are_read_from_results_and_answers_to_the_cent():
    assert headline_number('{"monthly_payment": 386.66, "payments": 60}') == 386.66
    assert headline_number("2898") == 2898.0
    assert headline_number('[{"text": "no numbers"}]') is None
    assert states_number("That is $23,199.36 in total.", 23199.36)
    assert states_number("Save $416.67 a month.", 416.6666667)
    assert not states_number("Save $41,666.67 a month.", 416.6666667)


COMPOUND = {"type": "function", "function": {"name": "compound_interest", "parameters": {
    "type": "object", "required": ["principal"],
    "properties": {"principal": {"type": "number"},
                   "compounding": {"type": "string", "enum": ["monthly", "annually"], "default": "monthly"}}}}}


def test_an_argument_left_out_counts_as_its_schema_default():
    gold = call("compound_interest", principal=100, compounding="monthly")
    assert same_call(call("compound_interest", principal=100), gold, [COMPOUND])
    assert not same_call(call("compound_interest", principal=100), gold)  # no schema: no default known
    annually = call("compound_interest", principal=100, compounding="annually")
    assert not same_call(call("compound_interest", principal=100), annually, [COMPOUND])
    assert same_call(call("compound_interest", principal=100.0), call("compound_interest", principal=100), [COMPOUND])
    as_text = {"function": {"name": "compound_interest", "arguments": '{"principal": 100}'}}
    assert same_call(as_text, gold, [COMPOUND])
