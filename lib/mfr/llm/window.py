"""A sliding window of requests in flight: as soon as one returns, the next is sent (never waves)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

Req = TypeVar("Req")
Res = TypeVar("Res")


def sliding_window(call: Callable[[Req], Res], requests: Iterable[Req], window: int) -> Iterator[Res]:
    """Yield ``call(r)`` for every request, in completion order, with at most ``window`` in flight.

    Requests are pulled from ``requests`` lazily, so a partition's rows stream through without being
    held in memory; the slowest request never stalls the others.
    """
    window = max(1, int(window))
    source = iter(requests)
    with ThreadPoolExecutor(max_workers=window, thread_name_prefix="mfr-llm") as pool:
        pending: set[Future[Res]] = set()

        def refill() -> None:
            while len(pending) < window:
                try:
                    item = next(source)
                except StopIteration:
                    return
                pending.add(pool.submit(call, item))

        refill()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                pending.discard(fut)
            refill()  # top up before handing results out: the window stays full
            for fut in done:
                yield fut.result()
