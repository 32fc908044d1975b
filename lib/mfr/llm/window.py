"""Sliding windows of requests in flight: as soon as one returns, the next is sent (never waves).

One window per group (an endpoint): requests of several purposes interleave in one task, each endpoint
keeps its own window full, and a full window never holds up the other endpoint's requests.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

Req = TypeVar("Req")
Res = TypeVar("Res")
G = TypeVar("G", bound=Hashable)


def sliding_window(call: Callable[[Req], Res], requests: Iterable[Req], window: int) -> Iterator[Res]:
    """Yield ``call(r)`` for every request, in completion order, with at most ``window`` in flight.

    Requests are pulled from ``requests`` lazily, so a partition's rows stream through without being
    held in memory; the slowest request never stalls the others.
    """
    return grouped_windows(call, ((0, r) for r in requests), {0: window})


def grouped_windows(call: Callable[[Req], Res], requests: Iterable[tuple[G, Req]], windows: Mapping[G, int],
                    lookahead: int | None = None) -> Iterator[Res]:
    """Yield ``call(r)`` for every ``(group, r)``, in completion order, with at most ``windows[group]`` in
    flight per group.

    Requests are read ahead of a full window (at most ``lookahead`` waiting, default twice the sum of the
    windows) so the other groups' windows stay full whatever order the requests come in. When reading
    the requests fails, the calls already sent are finished and yielded before the error is raised
    (their answers are not lost).
    """
    sizes = {g: max(1, int(w)) for g, w in windows.items()}
    limit = max(1, lookahead if lookahead is not None else 2 * sum(sizes.values()))
    source = iter(requests)
    waiting: dict[G, deque[Req]] = {g: deque() for g in sizes}
    flying: dict[G, int] = dict.fromkeys(sizes, 0)
    queued = 0
    exhausted = False
    failure: BaseException | None = None
    with ThreadPoolExecutor(max_workers=sum(sizes.values()), thread_name_prefix="mfr-llm") as pool:
        pending: dict[Future[Res], G] = {}

        def send(group: G, item: Req) -> None:
            flying[group] += 1
            pending[pool.submit(call, item)] = group

        def refill() -> None:
            nonlocal queued, exhausted, failure
            for g, q in waiting.items():
                while q and flying[g] < sizes[g]:
                    send(g, q.popleft())
                    queued -= 1
            while not exhausted and queued < limit and any(flying[g] < sizes[g] for g in sizes):
                try:
                    group, item = next(source)
                except StopIteration:
                    exhausted = True
                    return
                except BaseException as exc:  # raised once the calls in flight are in
                    failure, exhausted = exc, True
                    return
                if group not in sizes:
                    raise KeyError(f"request for an unknown window {group!r}")
                if flying[group] < sizes[group] and not waiting[group]:
                    send(group, item)
                else:
                    waiting[group].append(item)
                    queued += 1

        refill()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                flying[pending.pop(fut)] -= 1
            refill()  # top up before handing results out: the windows stay full
            for fut in done:
                yield fut.result()
    if failure is not None:
        raise failure
