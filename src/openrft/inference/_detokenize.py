"""Incremental, UTF-8 safe detokenization with stop strings.

A byte-level model may split one character across tokens, so text is decoded
from each token's raw bytes with an incremental UTF-8 decoder: a partial
character waits for its next byte instead of surfacing as U+FFFD. Text that could
still become a stop string is held back until it cannot.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence

__all__ = ["TextStream", "Vocab"]


class Vocab:
    """Each token's raw bytes and display string (for logprobs), specials decoding to no text."""

    def __init__(
        self, *, token_bytes: Sequence[bytes], special_ids: set[int], size: int | None = None
    ) -> None:
        # Embedding matrices are often padded past the tokenizer: those ids decode to nothing.
        token_bytes = list(token_bytes) + [b""] * max(0, (size or 0) - len(token_bytes))
        self.token_bytes = [b"" if i in special_ids else b for i, b in enumerate(token_bytes)]
        self.display = [b.decode("utf-8", errors="replace") for b in token_bytes]
        self.display_bytes = [list(b) for b in token_bytes]
        self.special_ids = special_ids


class TextStream:
    """Turns one choice's tokens into text deltas; `stopped` once a stop string appears."""

    def __init__(self, *, vocab: Vocab, stop: Sequence[str]) -> None:
        self._vocab = vocab
        self._stop = tuple(stop)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._text = ""  # all text decoded so far
        self._emitted = 0  # how much of it has been handed out
        self.stopped = False

    @property
    def text(self) -> str:
        """The final text so far (up to the stop string, if one was found)."""
        return self._text

    def push(self, token_id: int) -> str:
        """Add one token; return the text that became safe to emit."""
        if self.stopped:
            return ""
        piece = (
            self._vocab.token_bytes[token_id] if token_id < len(self._vocab.token_bytes) else b""
        )
        self._text += self._decoder.decode(piece)
        if self._stop:
            self._find_stop()
        safe = len(self._text) if self.stopped else len(self._text) - self._held_back()
        return self._take(safe)

    def finish(self) -> str:
        """Flush held-back text (and a dangling partial character) at the end of a choice."""
        if not self.stopped:
            self._text += self._decoder.decode(b"", final=True)
        return self._take(len(self._text))

    def _find_stop(self) -> None:
        # Only the tail can hold a new match: start at the earliest place a stop could begin.
        start = max(0, self._emitted - max(len(s) for s in self._stop))
        hits = [i for s in self._stop if (i := self._text.find(s, start)) != -1]
        if hits:
            self._text = self._text[: min(hits)]
            self.stopped = True

    def _held_back(self) -> int:
        # The longest suffix of the text that is a proper prefix of some stop string.
        longest = 0
        for s in self._stop:
            for k in range(min(len(s) - 1, len(self._text)), longest, -1):
                if self._text.endswith(s[:k]):
                    longest = k
                    break
        return longest

    def _take(self, upto: int) -> str:
        if upto <= self._emitted:
            return ""
        out = self._text[self._emitted : upto]
        self._emitted = upto
        return out
