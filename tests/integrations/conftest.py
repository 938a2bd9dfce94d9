"""An in-memory source: the sync engine's tests feed it batches by hand."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from integrations.base import STREAMS, Batch, Record, SourceReport


class MemorySource:
    """A source whose streams are lists of batches (or exceptions to raise at that point)."""

    def __init__(
        self, name: str = "file", **streams: Sequence[Batch | Sequence[Record] | BaseException]
    ) -> None:
        self.name = name
        self.report = SourceReport()
        self.batches = streams
        self.reads: list[tuple[str, str | None, bool]] = []

    def streams(self) -> Sequence[str]:
        known = [stream for stream in STREAMS if stream in self.batches]
        return known + [stream for stream in self.batches if stream not in STREAMS]

    def read(self, stream: str, cursor: str | None, *, full: bool) -> Iterator[Batch]:
        self.reads.append((stream, cursor, full))
        for item in self.batches[stream]:
            if isinstance(item, BaseException):
                raise item
            yield item if isinstance(item, Batch) else Batch(stream, list(item))


def memory_source(**streams: Any) -> MemorySource:
    """Build a MemorySource named "file"; a stream given as a flat list of records is one batch."""
    shaped: dict[str, Any] = {}
    for stream, value in streams.items():
        if value and not isinstance(value[0], Batch | list | tuple | BaseException):
            value = [list(value)]
        shaped[stream] = value
    return MemorySource(**shaped)
