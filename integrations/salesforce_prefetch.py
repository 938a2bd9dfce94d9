"""Fetch the next query pages while the engine writes the current batch.

A sync alternates between waiting for Salesforce and writing to the database. Iterating the client's
pages in a background thread, a few chunks ahead at most, lets the two overlap while memory stays
bounded. Only the background thread talks HTTP; only the caller's thread touches the database.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, TypeVar

Item = TypeVar("Item")

_ITEMS, _DONE, _FAILED = "items", "done", "failed"
# How often a blocked producer looks whether the consumer went away.
_POLL_SECONDS = 0.1


def chunked(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """Yield `items` in lists of `size` (the last one shorter)."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def prefetched(items: Iterable[Item], *, chunk: int = 500, depth: int = 4) -> Iterator[Item]:
    """Iterate `items` in a background thread, staying at most `depth` chunks of `chunk` ahead."""
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stopped = threading.Event()

    def hand_over(message: tuple[str, Any]) -> bool:
        while not stopped.is_set():
            try:
                handoff.put(message, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for pending in chunked(items, chunk):
                if not hand_over((_ITEMS, pending)):
                    return
            hand_over((_DONE, None))
        except BaseException as error:  # handed to the consumer, which raises it in its own thread
            hand_over((_FAILED, error))
        # Once this thread and the consumer are both done, nothing refers to `items`: a generator is
        # closed then, so a prefetched iterable nested inside it stops its thread too.

    worker = threading.Thread(target=produce, name="salesforce-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, payload = handoff.get()
            if kind == _ITEMS:
                yield from payload
            elif kind == _DONE:
                return
            else:
                raise payload
    finally:
        stopped.set()
