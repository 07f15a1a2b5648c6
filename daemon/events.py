"""Fan-out of committed changes to subscribers, never blocking on a slow one."""

from __future__ import annotations

from collections.abc import Sequence

import trio

from protocols import control

EventBatch = tuple[control.Event, ...]


class Subscription:
    """A subscriber's end. After ``receive`` ends, ``dropped`` says whether it fell behind."""

    def __init__(
        self, receive: trio.MemoryReceiveChannel[EventBatch], topics: frozenset[control.Topic]
    ) -> None:
        self.receive = receive
        self.topics = topics
        self.dropped = False


class EventBus:
    """Each commit's events go to every subscriber as one batch, with ``send_nowait``.

    A subscriber whose buffer is full is dropped: its channel is closed and ``dropped`` set,
    so it can tell its client to resync instead of the ledger waiting for it.
    """

    def __init__(self, buffer: int = 64) -> None:
        self._buffer = buffer
        self._subscribers: dict[trio.MemorySendChannel[EventBatch], Subscription] = {}

    def subscribe(
        self, topics: frozenset[control.Topic] = frozenset(control.ALL_TOPICS)
    ) -> Subscription:
        send, receive = trio.open_memory_channel[EventBatch](self._buffer)
        subscription = Subscription(receive, topics)
        self._subscribers[send] = subscription
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        for send, sub in list(self._subscribers.items()):
            if sub is subscription:
                del self._subscribers[send]
                send.close()

    def publish(self, events: Sequence[control.Event]) -> None:
        if not events:
            return
        for send, subscription in list(self._subscribers.items()):
            batch = tuple(e for e in events if control.topic_of(e) in subscription.topics)
            if not batch:
                continue
            try:
                send.send_nowait(batch)
            except trio.WouldBlock:
                subscription.dropped = True
                del self._subscribers[send]
                send.close()
            except trio.BrokenResourceError:
                del self._subscribers[send]
                send.close()

    def close(self) -> None:
        for send in self._subscribers:
            send.close()
        self._subscribers.clear()
