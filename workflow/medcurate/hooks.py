"""The main Snakemake process's last word (onsuccess / onerror): release the run's folder locks,
print a line per dataset, and let the process exit at once."""

from __future__ import annotations

import sys
import threading

from . import plan


def end_of_run(lock, config: dict, start: float) -> None:
    if lock is not None:
        lock.release()
    for line in plan.summary(config, start):
        print(f"medcurate: {line}", file=sys.stderr)
    cancel_pending_timers()


def cancel_pending_timers() -> None:
    """Snakemake's scheduler arms a one-second rate-limit timer (--max-jobs-per-timespan, a
    non-daemon thread) after each scheduling round; the interpreter waits for it before exiting,
    so every run ended up to a second after its last job. The scheduler has returned when the
    hooks run: nothing is left for the timer to wake."""
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()
