"""Generated tokens to streamed text: incremental detokenising and `stop` strings.

`IncrementalDecoder` releases text only once it is stable (a multi-byte character split over
tokens is held until complete; TGI's prefix/read offsets keep each step O(1) in the length).
`StopStrings` cuts the text before the first stop string and holds back a tail that might
still become one, so a client never sees part of a stop string.
"""

from __future__ import annotations


class IncrementalDecoder:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix = self.read = 0

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def push(self, token_id: int) -> str:
        """Add a token; the text that became stable (possibly "")."""
        self.ids.append(token_id)
        before = self._decode(self.ids[self.prefix:self.read])
        now = self._decode(self.ids[self.prefix:])
        if len(now) > len(before) and not now.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return now[len(before):]
        return ""

    def flush(self) -> str:
        """Whatever is still held (an incomplete character at the very end)."""
        before = self._decode(self.ids[self.prefix:self.read])
        now = self._decode(self.ids[self.prefix:])
        self.prefix = self.read = len(self.ids)
        return now[len(before):]


class StopStrings:
    def __init__(self, stops: list[str] | tuple[str, ...] = ()):
        self.stops = [s for s in stops if s]
        self.text = ""
        self.sent = 0

    def push(self, piece: str) -> tuple[str, bool]:
        """(text safe to send now, whether a stop string was reached)."""
        self.text += piece
        if self.stops:
            hits = [i for s in self.stops if (i := self.text.find(s, self.sent)) >= 0]
            if hits:
                return self._send(min(hits)), True
            hold = max((k for s in self.stops for k in range(1, len(s)) if self.text.endswith(s[:k])), default=0)
            return self._send(len(self.text) - hold), False
        return self._send(len(self.text)), False

    def flush(self) -> str:
        return self._send(len(self.text))

    def _send(self, end: int) -> str:
        end = max(end, self.sent)
        out, self.sent = self.text[self.sent:end], end
        return out
