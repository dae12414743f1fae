"""Fitting a model in a background thread, so a page can show progress, be left and come back, and stop it.

No Streamlit here: the page polls `FitJob` (status, progress, the model's history) on each rerun.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any


class FitJob:
    """Runs `model.fit(corpus, callback)` in a daemon thread; `stop()` makes the callback return False."""

    def __init__(self, model, corpus, label: str, meta: dict | None = None) -> None:
        self.model = model
        self.corpus = corpus
        self.label = label
        self.meta = dict(meta or {})
        self.status = "pending"
        self.error: str | None = None
        self.details: str | None = None
        self.last: Any = None
        self.started = 0.0
        self.finished = 0.0
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
            self.error = f"{type(exc).__name__}: {exc}"
            self.details = traceback.format_exc()
            status = "failed"
        self.finished = time.perf_counter()
        self.status = status  # last, so a reader that sees the job ended also sees its end time and error

    def _callback(self, progress: Any) -> bool:
        self.last = progress
        return not self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set() and self.running

    @property
    def running(self) -> bool:
        return self.status in ("pending", "running")

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True when it has."""
        if self._thread is not None:
            self._thread.join(timeout)
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
        if last is not None and hasattr(last, "epochs"):
            text = f"epoch {last.epoch}/{last.epochs}, step {last.step}/{last.steps}, loss {last.loss:.4f}"
        else:
            text = "starting" if self.running else ""
        if self.stopping:
            return f"stopping after this step — {text}"
        return f"{self.status}: {text}" if not self.running else text
