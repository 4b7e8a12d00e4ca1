"""A one-line text progress bar for a terminal (stderr), redrawn in place with ``\\r``."""

from __future__ import annotations

from typing import TextIO

WIDTH = 30


class ProgressBar:
    def __init__(self, stream: TextIO, total: float) -> None:
        self._stream = stream
        self._total = total
        self._shown = ""

    def update(self, done: float, label: str) -> None:
        fraction = min(max(done / self._total, 0.0), 1.0) if self._total > 0 else 1.0
        filled = round(fraction * WIDTH)
        line = f"\r[{'#' * filled}{'.' * (WIDTH - filled)}] {fraction:4.0%} {label:<24}"
        if line != self._shown:  # redraw only on change: the bar is updated every tick
            self._stream.write(line)
            self._stream.flush()
            self._shown = line

    def finish(self) -> None:
        self._stream.write("\n")
        self._stream.flush()
