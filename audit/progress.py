"""The console progress bar (rich), shown on a terminal and silent otherwise (CI logs, pipes)."""
from __future__ import annotations

import sys
from contextlib import AbstractContextManager
from typing import Any


class Progress(AbstractContextManager["Progress"]):
    """Two phases a long run goes through: reading the export, then evaluating visits."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[unit]}"),
                TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=False,
            )
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def phase(self, name: str, total: int | None, unit: str) -> None:
        if self._bar is not None:
            self._tasks[name] = self._bar.add_task(name, total=total, unit=unit)

    def advance(self, name: str, amount: int = 1) -> None:
        if self._bar is not None and name in self._tasks:
            self._bar.advance(self._tasks[name], amount)

    def finish(self, name: str) -> None:
        if self._bar is not None and name in self._tasks:
            task = self._tasks[name]
            done = self._bar.tasks[[t.id for t in self._bar.tasks].index(task)].completed
            self._bar.update(task, total=done, completed=done)
