"""A terminal progress bar driven by the trainer's :class:`~cactus.training.trainer.Progress` callback."""

from __future__ import annotations

import sys
from typing import Any


class ProgressBar:
    """Draws one tqdm bar per phase and prints epoch summaries and messages above it."""

    def __init__(self, *, file: Any = None, disable: bool = False) -> None:
        self.file = file or sys.stderr
        self.disable = disable
        self._bar = None
        self._phase: str | None = None

    def __call__(self, progress: Any) -> None:
        from tqdm import tqdm

        phase = "train" if progress.phase == "validate" else progress.phase
        if progress.steps and (self._bar is None or phase != self._phase or self._bar.total != progress.steps):
            self.close()
            self._bar = tqdm(total=progress.steps, desc=phase, unit="step", file=self.file, disable=self.disable,
                             dynamic_ncols=True)
            self._phase = phase
        if self._bar is not None and progress.steps:
            self._bar.n = min(progress.step, progress.steps)
            postfix = {}
            if progress.epochs:
                postfix["epoch"] = f"{progress.epoch}/{progress.epochs}"
            if progress.loss is not None:
                postfix["loss"] = f"{progress.loss:.4f}"
            if progress.sets_per_s:
                postfix["sets/s"] = f"{progress.sets_per_s:.1f}"
            self._bar.set_postfix(postfix, refresh=False)
            self._bar.refresh()
        if progress.message:
            (self._bar.write if self._bar is not None else print)(progress.message, file=self.file)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
