"""Progress that reads well where it lands: tqdm bars on a terminal, whole periodic lines in a log file.

A tqdm bar redraws itself with carriage returns; written to a file (a job log, CI) those become one very long line
with the Trainer's loss dicts interleaved. When stderr is not a terminal, [`LineProgressCallback`] replaces the
Trainer's bar and [`progress`] replaces tqdm for hf_mtl's own loops: one line every ``interval`` seconds.
"""

from __future__ import annotations

import logging
import sys
import textwrap
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from transformers import TrainerCallback

logger = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_INTERVAL = 30.0


def is_terminal(stream: Any = None) -> bool:
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def progress_line(desc: str, done: int, total: int | None, elapsed: float) -> str:
    """``desc: 40/200 (20%), 0:12 elapsed, ~0:48 left``."""
    if not total:
        return f"{desc}: {done}, {_duration(elapsed)} elapsed"
    left = elapsed / done * (total - done) if done else 0.0
    return f"{desc}: {done}/{total} ({100 * done / total:.0f}%), {_duration(elapsed)} elapsed, ~{_duration(left)} left"


def progress(iterable: Iterable[T], desc: str, total: int | None = None, disable: bool = False,
             interval: float = DEFAULT_INTERVAL) -> Iterator[T]:
    """``tqdm(iterable)`` on a terminal; otherwise a log line every ``interval`` seconds and one at the end."""
    if disable:
        yield from iterable
        return
    if is_terminal():
        from tqdm.auto import tqdm

        yield from tqdm(iterable, desc=desc, total=total)
        return
    total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
    start = last = time.time()
    done = 0
    for item in iterable:
        yield item
        done += 1
        now = time.time()
        if now - last >= interval:
            logger.info(progress_line(desc, done, total, now - start))
            last = now
    logger.info(progress_line(desc, done, total, time.time() - start))


class LineProgressCallback(TrainerCallback):
    """The Trainer's progress as whole lines: ``train: 40/200 (20%), ...`` every ``interval`` seconds (and at the
    last step) on stderr, and each logged dict on stdout, as the stock ProgressCallback prints them (wrapped at 160 characters)."""

    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        self.interval = interval
        self.start = self.last = 0.0
        self.training = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = self.last = time.time()
        self.training = True

    def on_train_end(self, args, state, control, **kwargs):
        self.training = False  # like the stock bar: a later `trainer.evaluate()` returns its metrics, prints nothing

    def on_step_end(self, args, state, control, **kwargs):
        now = time.time()
        if state.is_world_process_zero and (now - self.last >= self.interval or state.global_step == state.max_steps):
            print(progress_line("train", state.global_step, state.max_steps, now - self.start), file=sys.stderr,
                  flush=True)
            self.last = now

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs and self.training:
            shown = {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in logs.items() if k != "total_flos"}
            # an evaluation's many per-task metrics wrap onto indented lines instead of one line of thousands
            print(textwrap.fill(str(shown), width=160, subsequent_indent="    ", break_long_words=False), flush=True)


def use_line_progress(trainer: Any, interval: float = DEFAULT_INTERVAL) -> bool:
    """Swap the Trainer's tqdm ``ProgressCallback`` for [`LineProgressCallback`] when stderr is not a terminal
    (notebooks keep their own widget callback). Returns whether it swapped."""
    from transformers.trainer_callback import ProgressCallback

    if is_terminal() or not any(type(cb) is ProgressCallback for cb in trainer.callback_handler.callbacks):
        return False
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(LineProgressCallback(interval))
    return True
