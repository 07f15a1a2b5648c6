"""Fan-out of committed changes to subscribers, never blocking on a slow one, and the board
of what each shop's actors are doing, whose changes go out the same way."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import trio

from daemon.commands import Backlog
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
        # each event's topic once, not once per subscriber
        topics = [(control.topic_of(e), e) for e in events]
        for send, subscription in list(self._subscribers.items()):
            batch = tuple(e for topic, e in topics if topic in subscription.topics)
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


class StatusBoard:
    """What each shop's actors are doing, for ``zaiko status``; changes go out as events."""

    def __init__(self, bus: EventBus, now: Callable[[], str]) -> None:
        self._bus = bus
        self._now = now
        self._actors: dict[str, dict[str, control.ActorStatus]] = {}
        self._intake: dict[str, control.IntakeStatus] = {}
        self._reflect: dict[str, control.ReflectStatus] = {}

    def update(
        self, shop: str, name: str, state: control.ActorState, *, error: str = "", restarts: int = 0
    ) -> None:
        status = control.ActorStatus(
            name=name, state=state, restarts=restarts, last_error=error, since=self._now()
        )
        self._actors.setdefault(shop, {})[name] = status
        self._bus.publish([control.ActorChanged(shop=shop, actor=status)])

    def actors(self, shop: str) -> tuple[control.ActorStatus, ...]:
        return tuple(self._actors.get(shop, {}).values())

    def report_intake(self, shop: str, report: control.IntakeStatus) -> None:
        """What a shop's intake actor sees (backlog, quarantine, ignored mails, last error);
        a change goes out as an event."""
        if self._intake.get(shop) != report:
            self._intake[shop] = report
            self._bus.publish([control.IntakeChanged(shop=shop, intake=report)])

    def intake(self, shop: str) -> control.IntakeStatus:
        return self._intake.get(shop, control.IntakeStatus())

    def report_reflect(self, shop: str, report: control.ReflectStatus) -> None:
        """What a shop's reflector sees (next run, last error, pushed); a change goes out as
        an event."""
        if self._reflect.get(shop) != report:
            self._reflect[shop] = report
            self._bus.publish([control.ReflectChanged(shop=shop, reflection=report)])

    def reflect(self, shop: str) -> control.ReflectStatus:
        return self._reflect.get(shop, control.ReflectStatus())

    def backlogs(self) -> dict[str, Backlog]:
        return {
            shop: Backlog(count=report.backlog, oldest=report.backlog_oldest)
            for shop, report in self._intake.items()
            if report.backlog
        }

    def forget(self, shop: str) -> None:
        self._actors.pop(shop, None)
        self._intake.pop(shop, None)
        self._reflect.pop(shop, None)
