"""The running step's log buffer: the head is kept whole, past it a rolling tail; every chunk knows its
offset, so what was cut shows; stored tail chunks that fell out of the window are named for deletion."""

from __future__ import annotations

from conveyor.engine.step_log import LINE_CHARS, StepLog


def lines_of(text: str) -> list[str]:
    return [line.split(" ", 1)[1] for line in text.splitlines()]  # without the time stamp


def test_below_the_head_limit_everything_is_kept_in_order() -> None:
    log = StepLog(lambda s: s, head=1000, tail=1000)
    log("one")
    log("two")
    first = log.drain()
    log("three")
    second = log.drain()
    assert [c.seq for c in first.chunks + second.chunks] == [0, 1]
    assert lines_of(first.chunks[0].text) == ["one", "two"] and lines_of(second.chunks[0].text) == ["three"]
    assert second.chunks[0].start == len(first.chunks[0].text)  # contiguous: nothing cut
    assert first.drop is None and second.drop is None and not log.drain()


def test_past_the_head_only_a_rolling_tail_is_kept() -> None:
    log = StepLog(lambda s: s, head=100, tail=200)
    for n in range(1000):
        log(f"line {n:04d}")  # 19 characters with the stamp and newline
    flush = log.drain()
    head, tail = flush.chunks
    assert lines_of(head.text)[0] == "line 0000" and head.start == 0 and len(head.text) < 100 + 19
    assert lines_of(tail.text)[-1] == "line 0999" and len(tail.text) <= 200
    assert tail.start == 1000 * 19 - len(tail.text)  # where it sits in the whole stream: the rest was cut


def test_stored_tail_chunks_older_than_the_window_are_dropped() -> None:
    log = StepLog(lambda s: s, head=0, tail=100)
    seqs = []
    for _ in range(4):
        for n in range(3):
            log(f"line {n:04d}")  # 57 characters per drain
        seqs.append(log.drain())
    assert [f.chunks[0].seq for f in seqs] == [0, 1, 2, 3]
    # after the third drain, the first chunk ends more than 100 characters before the end
    assert [f.drop for f in seqs] == [None, None, (0, 0), (1, 1)]


def test_lines_are_redacted_and_a_huge_line_is_cut() -> None:
    log = StepLog(lambda s: s.replace("hunter2", "********"))
    log("password=hunter2")
    log("y" * (LINE_CHARS + 50))
    [chunk] = log.drain().chunks
    first, second = lines_of(chunk.text)
    assert first == "password=********"
    assert second == "y" * LINE_CHARS + " [line cut: 50 more characters]"
