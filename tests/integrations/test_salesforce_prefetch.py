"""Reading ahead in a background thread: order, bounded read-ahead, errors, and stopping early."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from integrations.salesforce_prefetch import prefetched


class Tracked:
    """A generator over 0..count-1 that records how far it was read and whether it was closed."""

    def __init__(self, count: int, *, fail_at: int | None = None) -> None:
        self.count = count
        self.fail_at = fail_at
        self.produced = 0
        self.closed = threading.Event()
        self.threads: set[str] = set()

    def __iter__(self) -> Iterator[int]:
        try:
            for number in range(self.count):
                self.threads.add(threading.current_thread().name)
                if number == self.fail_at:
                    raise ConnectionError(f"lost the connection at row {number}")
                self.produced += 1
                yield number
        finally:
            self.closed.set()


def test_items_arrive_complete_and_in_order_from_another_thread() -> None:
    source = Tracked(1003)

    assert list(prefetched(source, chunk=10, depth=2)) == list(range(1003))
    assert source.threads == {"salesforce-prefetch"}


def test_the_producer_never_runs_more_than_a_few_chunks_ahead() -> None:
    source = Tracked(5000)
    chunk, depth = 10, 2
    ahead = []
    for taken, number in enumerate(prefetched(source, chunk=chunk, depth=depth), start=1):
        assert number == taken - 1
        # In the consumer's hands: the current chunk; queued: `depth` chunks; the producer: one more.
        ahead.append(source.produced - taken)
    assert max(ahead) <= (depth + 2) * chunk
    assert source.produced == 5000


def test_an_error_in_the_producer_is_raised_to_the_consumer_after_the_items_before_it() -> None:
    received: list[int] = []

    with pytest.raises(ConnectionError, match="row 25"):
        for number in prefetched(Tracked(100, fail_at=25), chunk=10, depth=2):
            received.append(number)

    assert received == list(range(20))  # the chunk holding row 25 never completed


def test_stopping_early_closes_the_source_in_its_thread() -> None:
    source = Tracked(10_000)
    items = prefetched(source, chunk=10, depth=2)
    assert [next(items) for _ in range(5)] == [0, 1, 2, 3, 4]

    items.close()

    assert source.closed.wait(timeout=5)
    assert source.produced < 10_000


def test_nested_read_ahead_stops_both_threads_when_the_consumer_stops() -> None:
    inner_source = Tracked(10_000)
    outer = prefetched((number * 2 for number in prefetched(inner_source, chunk=10, depth=2)), chunk=5)
    assert next(outer) == 0

    outer.close()

    assert inner_source.closed.wait(timeout=5)
