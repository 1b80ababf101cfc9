"""Progress of the stages after a fit (rendering views, clustering): a rich bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

__all__ = ["stage_progress"]


@contextmanager
def stage_progress(
    label: str, total: int, unit: str, enabled: bool = True, log: Callable[[str], None] = print
) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)`` for a stage of ``total`` ``unit`` (e.g. rays, sizes).

    On a terminal it drives a rich bar (done/total, rate, elapsed, ETA); without one (a log file, a pipe) it writes a
    plain line through ``log`` at every further 10% (``label done/total unit, rate/s, ETA s``); nothing when
    ``enabled`` is False."""
    if not enabled or total <= 0:
        yield lambda n=1: None
        return
    if sys.stdout.isatty():
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        columns = [
            TextColumn(f"[bold]{label}[/]"),
            BarColumn(),
            TextColumn(f"{{task.completed}}/{{task.total}} {unit}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        ]
        with Progress(*columns, transient=False) as bar:
            task = bar.add_task(label, total=total)
            yield lambda n=1: bar.advance(task, n)
        return
    t0 = time.perf_counter()
    state = {"done": 0, "next": 0.1}

    def advance(n: int = 1) -> None:
        state["done"] += n
        fraction = state["done"] / total
        if fraction >= state["next"] or state["done"] >= total:
            while state["next"] <= fraction:
                state["next"] += 0.1
            rate = state["done"] / max(time.perf_counter() - t0, 1e-9)
            eta = (total - state["done"]) / max(rate, 1e-9)
            log(f"{label} {state['done']}/{total} {unit}, {rate:.4g} {unit}/s, ETA {eta:.0f} s")

    yield advance
