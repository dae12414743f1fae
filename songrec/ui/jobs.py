"""Fitting a model in a background thread, so a page can show progress, be left and come back, and stop it;
and a server-wide queue that runs at most N such jobs at once.

No Streamlit here: the page polls `FitJob` (status, progress, the model's history) on each rerun.
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from songrec.errors import UserError


def ordinal(number: int) -> str:
    """1 -> '1st', 2 -> '2nd', 11 -> '11th', 23 -> '23rd'."""
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


class FitJob:
    """Runs `model.fit(corpus, callback)` in a daemon thread; `stop()` makes the callback return False.

    Status: queued (waiting for a slot in a `TrainingQueue`), running, then done, stopped or failed.
    """

    def __init__(self, model, corpus, label: str, meta: dict | None = None) -> None:
        self.model = model
        self.corpus = corpus
        self.label = label
        self.meta = dict(meta or {})
        self.status = "queued"
        self.error: str | None = None
        self.details: str | None = None
        self.last: Any = None
        self.started = 0.0
        self.finished = 0.0
        self.queue: TrainingQueue | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> FitJob:
        self.status = "running"
        self.started = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name=f"songrec-fit-{self.label}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.model.fit(self.corpus, callback=self._callback)
            status = "stopped" if self._stop.is_set() else "done"
        except Exception as exc:  # shown on the page, never swallowed
            if isinstance(exc, UserError):  # a user's mistake (too little data, a diverged run): words alone
                self.error = str(exc)
            else:  # a bug: its type, and the traceback under Details
                self.error, self.details = f"{type(exc).__name__}: {exc}", traceback.format_exc()
            status = "failed"
        self.finished = time.perf_counter()
        self.status = status  # last, so a reader that sees the job ended also sees its end time and error
        if self.queue is not None:
            self.queue.finished(self)

    def _callback(self, progress: Any) -> bool:
        self.last = progress
        return not self._stop.is_set()

    def stop(self) -> None:
        """Stop after the current step; a job still waiting in its queue leaves the queue and never starts."""
        self._stop.set()
        if self.status == "queued" and self.queue is not None:
            self.queue.cancel(self)

    def cancelled(self) -> None:
        """Called by the queue when the job leaves it unstarted."""
        self.finished = time.perf_counter()
        self.status = "stopped"

    @property
    def stopping(self) -> bool:
        return self._stop.is_set() and self.running

    @property
    def running(self) -> bool:
        """Not ended yet: running, or queued to run."""
        return self.status in ("queued", "running")

    @property
    def queued(self) -> bool:
        return self.status == "queued"

    @property
    def place(self) -> int | None:
        """1 for the next job to start, 2 for the one after...; None when not waiting."""
        return self.queue.place(self) if self.queue is not None and self.queued else None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the job to end (queued time included); True when it has."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.queued and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.05)
        thread = self._thread
        if thread is not None:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not self.running

    @property
    def seconds(self) -> float:
        end = self.finished if not self.running else time.perf_counter()
        return end - self.started if self.started else 0.0

    @property
    def fraction(self) -> float:
        """Share of the work done, from the last progress report (0..1)."""
        last = self.last
        if not self.running:
            return 1.0
        return 0.0 if last is None else last.fraction

    def describe(self) -> str:
        """One line on where the job stands."""
        last = self.last
        if self.status == "failed":
            return f"failed: {self.error}"
        if self.queued:
            place = self.place
            return f"waiting: {ordinal(place)} in line" if place else "waiting for a free slot"
        if last is not None and hasattr(last, "epochs"):
            text = f"epoch {last.epoch}/{last.epochs}, step {last.step}/{last.steps}, loss {last.loss:.4f}"
        else:
            text = "starting" if self.running else ""
        if self.stopping:
            return f"stopping after this step — {text}"
        return f"{self.status}: {text}" if not self.running else text


class TrainingQueue:
    """At most `max_running` jobs run at once on this server; later ones wait, first come first served."""

    def __init__(self, max_running: int = 1) -> None:
        if max_running < 1:
            raise ValueError(f"max_running must be 1 or more, not {max_running}")
        self.max_running = max_running
        self._running: list[FitJob | _Ticket] = []
        self._waiting: deque[FitJob | _Ticket] = deque()
        self._lock = threading.Lock()

    def submit(self, job: FitJob) -> FitJob:
        """Start the job now if a slot is free, else queue it (it starts when a running one ends)."""
        with self._lock:
            job.queue = self
            job.status = "queued"
            self._waiting.append(job)
            self._start_next()
        return job

    def place(self, job: FitJob) -> int | None:
        with self._lock:
            for position, waiting in enumerate(self._waiting, start=1):
                if waiting is job:
                    return position
        return None

    def cancel(self, job: FitJob) -> bool:
        """Take a waiting job out of the queue; False when it has already started."""
        with self._lock:
            if job not in self._waiting:
                return False
            self._waiting.remove(job)
        job.cancelled()
        return True

    def finished(self, job: FitJob) -> None:
        """A job ended: free its slot for the next waiting one."""
        with self._lock:
            if job in self._running:
                self._running.remove(job)
            self._start_next()

    @property
    def running(self) -> list[FitJob]:
        with self._lock:
            return list(self._running)

    @property
    def waiting(self) -> list[FitJob]:
        with self._lock:
            return list(self._waiting)

    @contextlib.contextmanager
    def slot(self, on_wait: Callable[[int], None] | None = None, poll: float = 0.5) -> Iterator[None]:
        """Hold a slot for work done in the caller's own thread (the Evaluation page trains there).

        Waits in line like a job; `on_wait(place)` reports the place while waiting. Leaving the block,
        normally or by an exception (a page left mid-wait), frees the slot or leaves the line.
        """
        ticket = _Ticket()
        self.submit(ticket)
        try:
            while not ticket.started.wait(poll):
                place = self.place(ticket)
                if on_wait is not None and place is not None:
                    on_wait(place)
            yield
        finally:
            if not self.cancel(ticket):
                self.finished(ticket)

    def _start_next(self) -> None:
        while self._waiting and len(self._running) < self.max_running:
            job = self._waiting.popleft()
            self._running.append(job)
            job.start()


class _Ticket:
    """A place in a TrainingQueue for work that runs in the caller's thread (see `TrainingQueue.slot`)."""

    def __init__(self) -> None:
        self.status = "queued"
        self.queue: TrainingQueue | None = None
        self.started = threading.Event()

    def start(self) -> None:
        self.status = "running"
        self.started.set()

    def cancelled(self) -> None:
        self.status = "stopped"
