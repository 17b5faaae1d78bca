"""Tool-use conversations for the finance-advisor example (imported by generate.py).

Every tool result in the data is produced by running the real built-in tool
(`agentmill.tools`), and every number in the answer after it is copied from that result,
so the model learns to call the tool and to report what it returned. Arguments follow one
convention per tool, which is what makes "exactly the right arguments" learnable:
  loan_payment       principal, annual_rate_percent, years (as stated by the user)
  compound_interest  principal, annual_rate_percent, years, compounding (the customer's word)
  calculator         the user's numbers in the order they were said ("15 * 2340 / 100"); a
                     division of money is rounded to the cent in the expression
                     ("round(2500 / 6, 2)"), so the answer copies the result
  account_lookup     the account id as written ("NW-10234")
  knowledge_search   the user's question, verbatim
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
ADVISOR_TOOLS = ["calculator", "loan_payment", "compound_interest"]
CS_TOOLS = ["account_lookup", "knowledge_search"]
FREQS = ["annually", "quarterly", "monthly"]  # the words compound_interest takes as `compounding`


class Tools:
    """The real built-in tools, configured like the example recipe."""

    def __init__(self, knowledge_folder: Path, database: Path):
        from agentmill.tools.builtin import builtin_tools

        self.registry = builtin_tools({"knowledge_search": {"folder": str(knowledge_folder)},
                                       "account_lookup": {"database": str(database)}}, base_dir=HERE)

    def run(self, name: str, arguments: dict) -> str:
        return self.registry.get(name).run(arguments)


def accounts(database: Path) -> list[dict]:
    """The demo bank's accounts, read from its SQL script."""
    db = sqlite3.connect(":memory:")
    db.executescript(database.read_text(encoding="utf-8"))
    cols = [c[1] for c in db.execute("PRAGMA table_info(accounts)")]
    return [dict(zip(cols, row)) for row in db.execute("SELECT * FROM accounts ORDER BY account_id")]


def _num(text: str):
    value = Decimal(text)
    return int(value) if value == value.to_integral_value() else float(value)


def usd(x) -> str:
    """A tool's amount as the answer writes it: its digits, to the cent, no thousands separator.

    SmolLM2 writes every digit as its own token, so "$12,500.00" from a tool's 12500.0 means
    counting digits to place the comma; copying "12500" is what a small model does reliably
    (measured: every wrong number in a demo run's answers was a misplaced separator or digit)."""
    value = Decimal(str(x)).quantize(Decimal("0.01"))
    return f"-${-value}" if value < 0 else f"${value}"


def usd0(x) -> str:
    return f"${int(x):,}"


def cents(division: str) -> str:
    """`division` rounded to the cent by the calculator itself: always, so the model need not
    work out whether it comes out even (measured: "round(158 / 4, 2)" for a gold "158 / 4")."""
    return f"round({division}, 2)"


def call(name: str, arguments: dict) -> dict:
    return {"role": "assistant", "content": None,
            "tool_calls": [{"type": "function", "function": {"name": name, "arguments": arguments}}]}


def used(tools: Tools, messages: list, name: str, arguments: dict) -> dict:
    """Append the call and the tool's real result; returns the parsed result."""
    content = tools.run(name, arguments)
    messages += [call(name, arguments), {"role": "tool", "name": name, "content": content}]
    return json.loads(content)


# ---------------------------------------------------------------- finance advisor

# More ways to ask for a loan's monthly payment, for extra training records only (held-out data
# keeps the four questions in loan()): phrasings that share "each month", "per month" or "over N
# years" with a monthly saving or a split bill, whose answer is a division instead.
MORE_LOAN_QUESTIONS = [
    "{p} at {r}% APR for {y} years: how much is that each month?",
    "I'd like to borrow {p} at {r}% over {y} years. What comes out of my account each month?",
    "How big is the monthly installment on {p} at {r}% APR repaid over {y} years?",
    "What does a {p} {kind} at {r}% for {y} years cost per month?",
    "Over {y} years at {r}% APR, what would I pay monthly on {p}?",
    "Could you work out my payment each month if I borrow {p} for {y} years at {r}%?",
    "My loan would be {p} at {r}% APR, paid back over {y} years. How much per month?",
    "Each month, how much would I repay on a {p} {kind} at {r}% over {y} years?",
]


def loan(rng, tools: Tools, rates, kinds, questions: list[str] | None = None) -> dict:
    """A loan's monthly payment (loan_payment), sometimes asked again for another term.
    `questions`: templates ({p}, {r}, {y}, {kind}) to ask it with instead of the four below."""
    p, rate, years = rng.randrange(4, 101) * 500, rng.choice(rates), rng.choice([2, 3, 4, 5, 6])
    if questions is not None:
        q = rng.choice(questions).format(p=usd0(p), r=rate, y=years, kind=rng.choice(kinds))
    else:
        q = rng.choice([f"I want to borrow {usd0(p)} for {years} years at {rate}% APR. What would my monthly payment be?",
                        f"What's the monthly payment on a {usd0(p)} loan at {rate}% over {years} years?",
                        f"If I take a {usd0(p)} {rng.choice(kinds)} at {rate}% interest for {years} years, "
                        "how much will I pay each month?",
                        f"How much would I pay per month on {usd0(p)} borrowed at {rate}% APR for {years} years?"])
    messages = [{"role": "user", "content": q}]
    r = used(tools, messages, "loan_payment", {"principal": p, "annual_rate_percent": _num(rate), "years": years})
    messages.append({"role": "assistant", "content": f"Your monthly payment would be {usd(r['monthly_payment'])}. "
                                                     f"Over {years} years that is {usd(r['total_paid'])} in total."})
    if rng.random() < 0.3:
        y2 = rng.choice([y for y in (2, 3, 4, 5, 6, 7) if y != years])
        messages.append({"role": "user", "content": rng.choice([f"What if I take {y2} years instead?",
                                                                 f"And over {y2} years?"])})
        r = used(tools, messages, "loan_payment", {"principal": p, "annual_rate_percent": _num(rate), "years": y2})
        messages.append({"role": "assistant", "content": f"Over {y2} years the monthly payment would be "
                                                         f"{usd(r['monthly_payment'])}, or {usd(r['total_paid'])} in total."})
    return {"messages": messages}


def compound(rng, tools: Tools, rates) -> dict:
    p, rate, years = rng.randrange(2, 81) * 250, rng.choice(rates), rng.randrange(2, 26)
    freq = rng.choice(FREQS)
    q = rng.choice([f"If I invest {usd0(p)} at {rate}% compounded {freq} for {years} years, how much will I have?",
                    f"How much will {usd0(p)} grow to in {years} years at {rate}% interest, compounded {freq}?",
                    f"I'm putting {usd0(p)} in savings at {rate}% compounded {freq}. What will it be worth after {years} years?"])
    messages = [{"role": "user", "content": q}]
    args = {"principal": p, "annual_rate_percent": _num(rate), "years": years, "compounding": freq}
    r = used(tools, messages, "compound_interest", args)
    messages.append({"role": "assistant", "content": f"You would have {usd(r['final_amount'])} after {years} years, "
                                                     f"which includes {usd(r['interest_earned'])} of interest."})
    return {"messages": messages}


def calculation(rng, tools: Tools, kinds: tuple[int, ...] | None = None) -> dict:
    """A calculator question of one of six kinds (`kinds`: only those)."""
    kind = rng.randrange(6) if kinds is None else rng.choice(kinds)
    if kind == 0:
        pct, amount = rng.choice([5, 10, 12, 15, 18, 20, 25, 30]), rng.randrange(20, 500) * 10
        q, expr = f"What is {pct}% of {usd0(amount)}?", f"{pct} * {amount} / 100"
        answer = lambda v: f"{pct}% of {usd0(amount)} is {usd(v)}."
    elif kind == 1:
        x = rng.randrange(15, 400)
        q, expr = rng.choice([f"If I spend {usd0(x)} a week, how much is that per year?",
                              f"I spend about {usd0(x)} every week. What does that add up to in a year?"]), f"{x} * 52"
        answer = lambda v: f"That is {usd(v)} per year."
    elif kind == 2:
        x = rng.randrange(20, 150) * 50
        q, expr = rng.choice([f"I take home {usd0(x)} a month. How much is that per year?",
                              f"What is {usd0(x)} a month over a whole year?"]), f"{x} * 12"
        answer = lambda v: f"That is {usd(v)} per year."
    elif kind == 3:
        x, n = rng.randrange(40, 900), rng.choice([2, 3, 4, 5, 6])
        q, expr = f"We need to split a {usd0(x)} bill between {n} people. How much does each pay?", cents(f"{x} / {n}")
        answer = lambda v: f"Each person pays {usd(v)}."
    elif kind == 4:
        g, m = rng.randrange(2, 61) * 500, rng.choice([6, 9, 10, 12, 15, 18, 24, 30, 36])
        q = rng.choice([f"I want to save {usd0(g)} in {m} months. How much should I put aside each month?",
                        f"How much do I need to save per month to have {usd0(g)} in {m} months?"])
        expr = cents(f"{g} / {m}")
        answer = lambda v: f"Save {usd(v)} per month to reach {usd0(g)} in {m} months."
    else:
        p, rate, years = rng.randrange(2, 101) * 100, rng.choice(["3", "4", "4.5", "5", "5.5", "6", "6.5", "7", "8"]), \
            rng.randrange(2, 8)
        q = rng.choice([f"How much simple interest will I pay on {usd0(p)} at {rate}% for {years} years?",
                        f"What is the simple interest on {usd0(p)} at {rate}% a year over {years} years?"])
        expr = f"{p} * {rate} / 100 * {years}"
        answer = lambda v: f"The simple interest is {usd(v)}."
    messages = [{"role": "user", "content": q}]
    content = tools.run("calculator", {"expression": expr})
    messages += [call("calculator", {"expression": expr}), {"role": "tool", "name": "calculator", "content": content}]
    value = json.loads(content)
    value = value["result"] if isinstance(value, dict) else value
    messages.append({"role": "assistant", "content": answer(round(float(value), 2))})
    return {"messages": messages}


# ---------------------------------------------------------------- customer service

def account_question(rng, tools: Tools, accounts_: list[dict]) -> dict:
    messages: list = []
    account_turn(rng, tools, messages, accounts_)
    return {"messages": messages}


def account_turn(rng, tools: Tools, messages: list, accounts_: list[dict]) -> None:
    """An account question: always looked up by its id, then answered from the record."""
    a = rng.choice(accounts_)
    account_id = a["account_id"]
    q = rng.choice([f"What's the balance on account {account_id}?", f"Can you check account {account_id} for me?",
                    f"How much money is in {account_id}?", f"Is my account {account_id} active?",
                    f"Please look up account {account_id}."])
    messages.append({"role": "user", "content": q})
    r = used(tools, messages, "account_lookup", {"account_id": account_id})
    if r["type"] == "credit":
        state = f"{usd(-r['balance'])} owed" if r["balance"] < 0 else f"a balance of {usd(r['balance'])}"
    else:
        state = f"a balance of {usd(r['balance'])}" + (" (overdrawn)" if r["balance"] < 0 else "")
    messages.append({"role": "assistant", "content": f"Account {account_id} is a {r['type']} account with "
                                                     f"{state}; it is {r['status']}."})


def knowledge_turn(tools: Tools, messages: list, question: str, answer: str) -> None:
    """A policy question: always looked up (the query is the customer's message), then answered."""
    messages.append({"role": "user", "content": question})
    used(tools, messages, "knowledge_search", {"query": question})
    messages.append({"role": "assistant", "content": answer})


def knowledge_documents(faq: list, folder: Path) -> None:
    """One markdown page per FAQ topic: the knowledge_search corpus, consistent with the answers."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.md"):
        old.unlink()
    for topic, questions, answer in faq:
        title = questions[0].rstrip("?")
        (folder / f"{topic}.md").write_text(f"# {title}\n\n{answer}\n", encoding="utf-8")
