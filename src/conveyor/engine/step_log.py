"""A running step's log on its way to the store: bounded in memory and in the database.

Lines are stamped and redacted as they arrive, then drained by the heartbeat (and once more with the
result) into append-only chunks (:mod:`conveyor.store.step_logs`). Each attempt of a step keeps:

- its head: the first ``HEAD_CHARS`` characters, written once and never dropped;
- its tail: a rolling window of the last ``TAIL_CHARS`` characters. Past the head, lines wait in a
  window that drops its oldest lines when full, so a step printing without end holds at most that much
  memory; in the store, a tail chunk whose every character is older than the window is deleted.

Every chunk carries its offset in the whole stream, so a reader sees where characters were cut and how
many. A single line longer than ``LINE_CHARS`` is cut to that length.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

from conveyor.store.step_logs import LogChunk, LogFlush

HEAD_CHARS = 64 * 1024
TAIL_CHARS = 256 * 1024
LINE_CHARS = 8 * 1024


class StepLog:
    """Collects a running step's lines; the heartbeat drains them into the database in batches."""

    def __init__(self, redact: Callable[[str], str], *, head: int = HEAD_CHARS, tail: int = TAIL_CHARS) -> None:
        self._redact = redact
        self._head_limit, self._tail_limit = head, tail
        self._lock = threading.Lock()
        self._written = 0  # characters of the whole stream so far: the offset of the next line
        self._head: list[str] = []  # head lines not drained yet
        self._head_offset = 0
        self._tail: deque[tuple[int, str]] = deque()  # (offset, line) past the head, not drained yet
        self._tail_chars = 0
        self._seq = 0
        self._stored_tail: deque[tuple[int, int]] = deque()  # (seq, end offset) of drained tail chunks

    def __call__(self, line: str) -> None:
        text = self._redact(line.rstrip())
        if len(text) > LINE_CHARS:
            text = f"{text[:LINE_CHARS]} [line cut: {len(text) - LINE_CHARS:,} more characters]"
        text = f"{datetime.now(UTC).strftime('%H:%M:%S')} {text}\n"
        with self._lock:
            offset, self._written = self._written, self._written + len(text)
            if offset < self._head_limit:
                if not self._head:
                    self._head_offset = offset
                self._head.append(text)
                return
            self._tail.append((offset, text))
            self._tail_chars += len(text)
            while self._tail_chars > self._tail_limit:
                self._tail_chars -= len(self._tail.popleft()[1])

    def drain(self) -> LogFlush:
        with self._lock:
            chunks: list[LogChunk] = []
            if self._head:
                chunks.append(LogChunk(self._seq, self._head_offset, "".join(self._head)))
                self._seq, self._head = self._seq + 1, []
            if self._tail:
                chunks.append(LogChunk(self._seq, self._tail[0][0], "".join(text for _, text in self._tail)))
                self._stored_tail.append((self._seq, self._written))
                self._seq, self._tail, self._tail_chars = self._seq + 1, deque(), 0
            horizon = self._written - self._tail_limit
            dead: list[int] = []
            while self._stored_tail and self._stored_tail[0][1] <= horizon:
                dead.append(self._stored_tail.popleft()[0])
        return LogFlush(chunks, (dead[0], dead[-1]) if dead else None)
