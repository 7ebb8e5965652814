"""A background job (retraining) the page polls for progress; one runs at a time."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lab.progress import Progress


@dataclass
class Job:
    """A function run in a thread, reporting (fraction, message) as it goes."""

    name: str
    fraction: float = 0.0
    message: str = "queued"
    result: Any = None
    error: str = ""
    done: threading.Event = field(default_factory=threading.Event)
    views: Any = None  # what the page shows of the result, built once by whoever shows it

    def report(self, fraction: float, message: str) -> None:
        """The progress callback handed to the work."""
        self.fraction, self.message = max(0.0, min(1.0, fraction)), message

    @property
    def running(self) -> bool:
        """True until the work returned or failed."""
        return not self.done.is_set()

    def status(self) -> str:
        """One line for the page: a text progress bar and the last message."""
        if self.error:
            return f"{self.name}: failed — {self.error}"
        filled = round(20 * self.fraction)
        bar = "█" * filled + "░" * (20 - filled)
        state = "done" if not self.running else f"{self.fraction:.0%}"
        return f"{self.name}: {bar} {state} — {self.message}"


def start_job(name: str, work: Callable[[Progress], Any]) -> Job:
    """Run `work(progress)` in a daemon thread; the returned `Job` tracks it."""
    job = Job(name)

    def target() -> None:
        try:
            job.result = work(job.report)
            job.report(1.0, "finished")
        except Exception as error:  # noqa: BLE001 - shown on the page, the arena keeps serving
            job.error = f"{type(error).__name__}: {error}"
            traceback.print_exc()
        finally:
            job.done.set()

    threading.Thread(target=target, name=f"job-{name}", daemon=True).start()
    return job
