"""Appends messages to a session store from its own process; driven by test_store.py.

usage: store_writer.py OPENER LOCATION SESSION TAG COUNT [--own-session ID] [--go-file PATH] [--pause S]

OPENER is "module:callable", called with LOCATION to open the store (so any SessionStore
implementation can be driven). Prints "ready" once imported, waits for --go-file to exist (so
several writers start together), opens the store, then appends message_content(TAG, i) for i in
0..COUNT-1 to SESSION (SESSION "new": a session it creates, titled TAG), every 4th one also
to --own-session, and prints "ack SESSION SEQ I"
the moment each append returns: a line on stdout means the write was acknowledged.
--pause sleeps up to S seconds between appends: without it one writer can hold the lock for
its whole run while the other backs off, and the writes would not really interleave.
"""

import argparse
import importlib
import random
import sys
import time
from pathlib import Path

from agentmill.store import StoredMessage


def message_content(tag: str, index: int) -> str:
    """Deterministic, varied-length, non-ASCII content so a torn or swapped write shows."""
    return f"{tag}-{index} " + "é✓ " * (index % 37)


def open_store(opener: str, location: str):
    module, _, name = opener.partition(":")
    return getattr(importlib.import_module(module), name)(location)


def main() -> None:
    parser = argparse.ArgumentParser()
    for arg in ("opener", "location", "session", "tag"):
        parser.add_argument(arg)
    parser.add_argument("count", type=int)
    parser.add_argument("--own-session")
    parser.add_argument("--go-file", type=Path)
    parser.add_argument("--pause", type=float, default=0.0)
    args = parser.parse_args()

    print("ready", flush=True)
    while args.go_file is not None and not args.go_file.exists():
        time.sleep(0.002)
    store = open_store(args.opener, args.location)
    if args.session == "new":
        args.session = store.create(args.tag).id
    for index in range(args.count):
        targets = [args.session]
        if args.own_session and index % 4 == 0:
            targets.append(args.own_session)
        for session_id in targets:
            message = StoredMessage(role="user", content=message_content(args.tag, index),
                                    kind="user", meta={"writer": args.tag, "index": index})
            seq = store.append(session_id, message)
            sys.stdout.write(f"ack {session_id} {seq} {index}\n")
            sys.stdout.flush()
            if args.pause:
                time.sleep(random.uniform(0, args.pause))
    store.close()


if __name__ == "__main__":
    main()
