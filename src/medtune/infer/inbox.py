"""The hand-off between request threads and an engine's loop thread.

Both live engines (``infer.live.LiveBatcher`` for transformers, ``serve.backends.llama_slots`` for
llama.cpp) decode on one thread of their own; requests arrive from the server's threads. An
``Inbox`` is the one place where they meet: ``put`` from any thread, ``take`` on the engine thread
(it sleeps while there is nothing to do), ``stop`` to end the loop.

>>> box = Inbox()
>>> box.put("a"); box.put("b")
>>> box.take(busy=lambda: False), len(box)
(['a', 'b'], 0)
>>> box.stop(); box.take(busy=lambda: True) is None
True
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Inbox(Generic[T]):
    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._wake = threading.Condition()
        self._stopping = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, work: T) -> None:
        """Any thread: hand ``work`` to the engine and wake it."""
        with self._wake:
            self._items.append(work)
            self._wake.notify()

    def stop(self) -> None:
        """Any thread: make the engine's next ``take`` return None."""
        with self._wake:
            self._stopping = True
            self._wake.notify()

    def take(self, busy: Callable[[], bool]) -> list[T] | None:
        """Engine thread: wait until work arrives, ``busy()`` (the engine has work of its own) or stop;
        return what arrived (maybe nothing), or None once stopped. ``busy`` is called under the lock."""
        with self._wake:
            while not self._stopping and not self._items and not busy():
                self._wake.wait()
            if self._stopping:
                return None
            return self.drain()

    def drain(self) -> list[T]:
        """Take everything waiting, without waiting (at shutdown or after a failed step)."""
        with self._wake:
            items = list(self._items)
            self._items.clear()
            return items
