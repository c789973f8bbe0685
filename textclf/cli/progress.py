"""Progress on a terminal: a bar for the sweep (tasks done of total, ETA) and one for the training in progress.

The library only logs (``textclf.core.logs``): epoch lines at INFO and step
records at DEBUG. On a terminal, without ``--quiet``, :func:`progress` installs
a logging handler that turns step records into a bar for the running training
and prints every other line above the bars; the sweep bar advances on the
pipeline's events. Off a terminal (CI logs, pipes) or with ``--quiet`` it
changes nothing: plain log lines, as before.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from textclf.cli.common import console, out
from textclf.core.logs import NOISY, PROGRESS, ours_or_warning


class _Bars(logging.Handler):
    def __init__(self, bars):
        super().__init__(level=logging.DEBUG)
        self.bars = bars
        self.training: dict[str, Any] = {}  # label -> task id of its bar
        self.sweep = None
        self.done: set[tuple] = set()  # (variant, seed) already counted

    def emit(self, record: logging.LogRecord) -> None:
        step = getattr(record, "textclf_step", None)
        if step is None:
            if record.levelno >= logging.INFO:
                text = record.getMessage() if record.name == PROGRESS else f"{record.levelname} {record.getMessage()}"
                self.bars.console.print(text, markup=False, highlight=False)
            return
        label, epoch, epochs, done, steps = step
        task = self.training.get(label)
        description = f"{label} · epoch {epoch}/{epochs}"
        if task is None:
            for other in self.training.values():  # one training runs at a time here: drop finished bars
                self.bars.remove_task(other)
            self.training = {label: self.bars.add_task(description, total=steps)}
            task = self.training[label]
        self.bars.update(task, description=description, completed=done, total=steps)

    def on_event(self, kind: str, info: dict) -> None:
        if kind == "start":
            self.sweep = self.bars.add_task(f"{info['pipeline']}: variants × seeds", total=info["tasks"])
            self.sweep_total = info["tasks"]
        elif kind == "round" and self.sweep is not None:  # more seeds: the sweep grows
            self.sweep_total += info["trainings"]
            self.bars.update(self.sweep, total=self.sweep_total)
        elif kind in ("trained", "task") and self.sweep is not None:
            key = (info["variant"], info["seed"])  # side-by-side runs report "trained", then "task" once timed
            if key not in self.done:
                self.done.add(key)
                self.bars.advance(self.sweep)


Printer = Callable[..., None]


@contextlib.contextmanager
def progress(
    enabled: bool, reporter: Callable[[Printer], Callable[[str, dict], None]] | None = None
) -> Iterator[Callable[[str, dict], None] | None]:
    """Yield the ``on_event`` to pass to a pipeline run.

    ``reporter(print)`` makes the CLI's own event printer; it is given a print
    function that writes above the bars while they are shown.
    """
    if not (enabled and console.is_terminal):
        yield reporter(out.print) if reporter else None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bars:
        handler = _Bars(bars)
        handler.addFilter(ours_or_warning)
        root = logging.getLogger()
        saved = list(root.handlers), root.level
        root.handlers = [handler]
        root.setLevel(logging.DEBUG)
        for noisy in NOISY:
            logging.getLogger(noisy).setLevel(max(logging.getLogger(noisy).level, logging.WARNING))

        on_event = reporter(bars.console.print) if reporter else None

        def event(kind: str, info: dict) -> None:
            handler.on_event(kind, info)
            if on_event is not None:
                on_event(kind, info)

        try:
            yield event
        finally:
            root.handlers, level = saved
            root.setLevel(level)
