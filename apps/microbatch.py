"""Micro-batching: calls that arrive while one batch runs are answered together by the next.

A `MicroBatcher` wraps a function of a list (`items -> results`, one result per item). Each
`call(item)` blocks until its result is ready. One worker thread takes every item waiting,
runs the function once on all of them, and hands each caller its own result, so thirty
students' answers are scored in one reward-model forward instead of thirty. A lone caller
waits for nothing: its batch is just itself.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class MicroBatcher(Generic[Item, Result]):
    """Runs `fn` on every item waiting at once; `call` returns one item's result."""

    def __init__(self, fn: Callable[[list[Item]], list[Result]], max_batch: int = 64):
        self.fn, self.max_batch = fn, max_batch
        self.waiting: queue.SimpleQueue[tuple[Item, Future]] = queue.SimpleQueue()
        self.batch_sizes: deque[int] = deque(maxlen=100_000)  # items per call of `fn`, latest
        threading.Thread(target=self.loop, daemon=True).start()

    def call(self, item: Item) -> Result:
        """`fn([item])[0]`, computed together with whatever else is waiting; raises what `fn` raised."""
        done: Future = Future()
        self.waiting.put((item, done))
        return done.result()

    def loop(self) -> None:
        """Forever: wait for one item, take every other item already waiting, run them together."""
        while True:
            batch = [self.waiting.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self.waiting.get_nowait())
                except queue.Empty:
                    break
            self.run(batch)

    def run(self, batch: list[tuple[Item, Future]]) -> None:
        """One call of `fn`; a failure goes to every caller in the batch, never kills the worker."""
        self.batch_sizes.append(len(batch))
        try:
            results = self.fn([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(batch)} items gave {len(results)} results")
        except Exception as error:  # noqa: BLE001 - the callers get it, the worker lives on
            for _, done in batch:
                done.set_exception(error)
            return
        for (_, done), result in zip(batch, results, strict=True):
            done.set_result(result)
