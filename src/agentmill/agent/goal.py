"""Goal mode (`agentmill run RUN_DIR --goal ...`): the AutoGPT loop, with its failure modes cut by rule.

The goal is one user message; the agent plans (the text it writes before a call), calls tools,
observes their results and repeats until it answers without a call. Every tool call waits for
the user's approval unless `--yes`; the turn's step budget is `--max-steps`; a repeated
identical call or an exhausted token budget ends the run with a notice. The transcript is a
session like any chat, so `agentmill sessions show ID` replays it.
"""

from __future__ import annotations

from dataclasses import replace

from agentmill.agent.agent import Agent, Approve, Event, TurnResult


def run_goal(agent: Agent, goal: str, max_steps: int = 8, approve: Approve | None = None,
             on_event: Event | None = None, media: list | None = None) -> TurnResult:
    goal = goal.strip()
    if not goal:
        from agentmill.errors import AgentmillError

        raise AgentmillError("--goal is empty: say what the agent should achieve")
    agent.budgets = replace(agent.budgets, tool_steps_per_turn=max_steps)
    if agent.store is not None and agent.session_id is not None:
        agent.store.rename(agent.session_id, f"goal: {goal[:60]}")
    return agent.turn(goal, on_event=on_event, approve=approve, media=media)
