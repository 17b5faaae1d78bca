"""Agent sessions of the server: the store's sessions, one `ServedAgent` per session, one turn at a time.

Agents are kept in memory (least recently used first out) and rebuilt from the store with
`Agent.resume` when needed, so a restarted server continues every stored conversation.
A session answers one message at a time (409 while a turn runs). Turns run on their own
threads (they block on the engine and on tools), never on the event loop.
Sessions made with an API key belong to that key: every method takes the caller's `owner`
(`auth.owner_of`), and another key's session is answered as if it did not exist (404), so
its id is not even confirmed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

from agentmill.agent.agent import Budgets
from agentmill.serve.errors import ApiError
from agentmill.store.sessions import Session, SessionNotFound
from agentmill.serve.served_agent import ServedAgent


class SessionPool:
    def __init__(self, run, tools, store, engine, max_new_tokens: int, context_tokens: int, cached: int = 64,
                 threads: int = 32):
        self.run, self.tools, self.store, self.engine = run, tools, store, engine
        self.budgets = dict(max_new_tokens=max_new_tokens, context_tokens=context_tokens)
        self.cached = cached
        self.label = str(run.run_dir.resolve()) if getattr(run, "run_dir", None) else None
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="agentmill-turn")
        self._agents: OrderedDict[str, ServedAgent] = OrderedDict()
        self._busy: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ sessions (store)

    def create(self, title: str = "", owner: str | None = None) -> dict:
        return session_json(self.store.create(title=title, run=self.label, owner=owner))

    def owned(self, session_id: str, owner: str | None) -> Session:
        """The session if `owner` may use it; SessionNotFound (404) otherwise."""
        session = self.store.get(session_id)
        if not session.readable_by(owner):
            raise SessionNotFound(session_id)
        return session

    def list(self, everything: bool = False, limit: int | None = None, owner: str | None = None) -> list[dict]:
        sessions = [s for s in self.store.list() if s.readable_by(owner)]
        if not everything:
            sessions = [s for s in sessions if s.run == self.label]
        return [session_json(s) for s in sessions[:limit]]

    def detail(self, session_id: str, owner: str | None = None) -> dict:
        session = self.owned(session_id, owner)
        return {**session_json(session), "messages": [asdict(m) for m in self.store.messages(session_id)]}

    def delete(self, session_id: str, owner: str | None = None) -> dict:
        self.owned(session_id, owner)
        self.store.delete(session_id)
        with self._lock:
            self._agents.pop(session_id, None)
        return {"id": session_id, "object": "agent.session", "deleted": True}

    # ------------------------------------------------------------ agents

    def claim(self, session_id: str) -> threading.Lock:
        """The session's turn lock, held by the caller (409 when a turn is running)."""
        with self._lock:
            lock = self._busy.setdefault(session_id, threading.Lock())
        if not lock.acquire(blocking=False):
            raise ApiError(409, f"session {session_id} is still answering a message; wait for it to finish",
                           param="session_id", code="session_busy")
        return lock

    def agent(self, session_id: str) -> ServedAgent:
        with self._lock:
            agent = self._agents.get(session_id)
            if agent is not None:
                self._agents.move_to_end(session_id)
                return agent
        agent = ServedAgent.resume(self.run, self.tools, self.store, session_id, engine=self.engine,
                                   budgets=Budgets(**self.budgets))
        with self._lock:
            self._agents[session_id] = agent
            while len(self._agents) > self.cached:
                self._agents.popitem(last=False)
        return agent

    def close(self) -> None:
        for agent in list(self._agents.values()):
            agent.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)


def session_json(session) -> dict:
    fields = asdict(session)
    fields.pop("owner", None)  # who owns it is the server's business, not the client's
    return {"object": "agent.session", **fields}
