"""The Train page's "The notebook, as written": the student notebook's model as written, the same model
with the fixes a user switched on, and the fixed model, trained in the background on the same playlists
and measured on the same held-out ones (`songrec.explore.collapse_report`).

The work is a job on the server's training queue (like the neural model's training), kept in the
user's server-side session, so a reload finds it running or its results. Models already fitted on
this data with the same settings are reused, so switching one fix on trains only that model again.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from songrec import explore
from songrec.corpus import Corpus
from songrec.ui.datasets import corpus, dataset
from songrec.ui.jobs import FitJob
from songrec.ui.registry import UserSession
from songrec.ui.session import current, training_queue

TEST_SHARE = 0.2
"""Share of the playlists held out for coverage and R-precision (the Evaluation page's default)."""
MAX_CASES = 300
"""Held-out playlists scored: enough for a stable coverage, few enough to score in seconds."""
FIXED_SETTINGS = {**explore.FIXED_MODEL, "epochs": 5}
"""The fixed model beside the notebook: one network at the notebook's widths, 5 epochs (seconds on the demo data)."""
KEPT_MODELS = 6
"""Fitted models kept per session for reuse (as written, fixed, and the last few fix combinations)."""
RESULTS_KEY = "notebook_replay"
FIXES_KEY = "notebook_fixes"


@dataclass
class ReplayProgress:
    """Where a replay stands: the share of the whole work done and what it is doing."""

    fraction: float
    label: str


@dataclass
class ReplayRun:
    """One replay's measurements, and the fixes that were on."""

    fixes: tuple[str, ...]
    report: explore.CollapseReport
    dataset_key: str
    seconds: float


@dataclass
class ReplayState:
    """What a session keeps of its replays: the runs, newest last, and fitted models to reuse."""

    runs: list[ReplayRun] = field(default_factory=list)
    models: OrderedDict = field(default_factory=OrderedDict)
    """(dataset key, model kind, settings) -> (fitted model, fit seconds)."""


def first_sentence(text: str) -> str:
    """The first sentence of a cause's explanation (the rest goes into the toggle's help)."""
    head, dot, _ = text.partition(". ")
    return head + "." if dot else text


def plan(fixes: Sequence[str]) -> dict[str, tuple[str, dict]]:
    """Label -> (model kind, settings) of what one replay trains: as written, with the fixes (when any), fixed."""
    models = {explore.AS_WRITTEN: ("notebook", {})}
    if fixes:
        models[explore.WITH_FIXES] = ("notebook", explore.notebook_params(fixes))
    models[explore.FIXED] = ("neural", dict(FIXED_SETTINGS))
    return models


class _Stopped(Exception):
    """The user pressed stop: leave the replay without results."""


class NotebookReplay:
    """The work of one replay job (`FitJob` calls `fit(corpus, callback)`); adds its run to `state` when done."""

    def __init__(self, fixes: Sequence[str], dataset_key: str, state: ReplayState, user: UserSession) -> None:
        self.fixes = tuple(key for key in (c.key for c in explore.NOTEBOOK_CAUSES) if key in set(fixes))
        self.dataset_key = dataset_key
        self.state = state
        self.user = user
        self.run: ReplayRun | None = None

    def fit(self, data: Corpus, callback=None) -> NotebookReplay:
        started = time.perf_counter()

        def report(fraction: float, label: str) -> None:
            if callback is not None and callback(ReplayProgress(fraction, label)) is False:
                raise _Stopped

        try:
            train, test, cases = explore.holdout_cases(data, TEST_SHARE, 0, MAX_CASES)
            explore.genre_pair(test)  # fail before training when there is nothing to compare
            models, seconds = {}, {}
            steps = plan(self.fixes)
            for done, (label, (kind, params)) in enumerate(steps.items()):
                models[label], seconds[label] = self._fitted(kind, params, train, label, done, len(steps) + 1, report)
            report(len(steps) / (len(steps) + 1), f"measuring on {len(cases)} held-out playlists")
            result = explore.collapse_report(models, test, cases, seconds)
        except _Stopped:
            return self
        self.run = ReplayRun(self.fixes, result, self.dataset_key, time.perf_counter() - started)
        with self.user.lock:
            self.state.runs.append(self.run)
        return self

    def _fitted(self, kind: str, params: dict, train: Corpus, label: str, done: int, stages: int, report):
        """A model fitted on `train` with these settings: a kept one, else fitted now with progress."""
        from songrec.models import make_model

        key = (self.dataset_key, kind, tuple(sorted(params.items())))
        if key in self.state.models:
            self.state.models.move_to_end(key)
            return self.state.models[key]
        report(done / stages, f"training {label}")
        started = time.perf_counter()
        stopped = False

        def progress(event) -> bool:
            nonlocal stopped
            try:
                report((done + event.fraction) / stages, f"training {label}: {event.label}")
            except _Stopped:
                stopped = True
                return False
            return True

        model = make_model(kind, **params).fit(train, callback=progress)
        if stopped:
            raise _Stopped
        fitted = (model, time.perf_counter() - started)
        self.state.models[key] = fitted
        while len(self.state.models) > KEPT_MODELS:
            self.state.models.popitem(last=False)
        return fitted


def state(user: UserSession | None = None) -> ReplayState:
    user = user or current()
    with user.lock:
        return user.results.setdefault(RESULTS_KEY, ReplayState())


def replay_job() -> FitJob | None:
    return current().replay_job


def start_replay(fixes: Sequence[str]) -> FitJob:
    """Queue a replay with these fixes on the current data; one per session at a time."""
    user = current()
    with user.lock:
        job = user.replay_job
        if job is not None and job.running:  # another tab of this session started one first
            return job
        work = NotebookReplay(fixes, dataset().key, state(user), user)
        user.settings[FIXES_KEY] = list(work.fixes)
        job = FitJob(work, corpus(), "notebook replay", meta={"fixes": work.fixes})
        user.replay_job = job
        return training_queue().submit(job)


def saved_fixes() -> list[str]:
    """The fixes this user switched on for their last replay (the toggles start there after a reload)."""
    return list(current().settings.get(FIXES_KEY, []))


def runs_here() -> list[ReplayRun]:
    """This user's replays on the current data, oldest first."""
    key = dataset().key
    return [run for run in list(state().runs) if run.dataset_key == key]


def last_run() -> ReplayRun | None:
    """The newest replay on the current data."""
    runs = runs_here()
    return runs[-1] if runs else None


def cause_titles(fixes: Sequence[str]) -> str:
    return ", ".join(explore.notebook_cause(key).title.lower() for key in fixes) or "none (as written)"


def runs_table(runs: Sequence[ReplayRun]):
    """One row per replay on this data: the fixes on and the notebook's coverage, R-precision and overlap."""
    import pandas as pd

    rows = []
    for number, run in enumerate(runs, start=1):
        summary = run.report.summary.set_index("model")
        notebook = summary.loc[explore.WITH_FIXES if run.fixes else explore.AS_WRITTEN]
        rows.append(
            {
                "run": number,
                "fixes on": cause_titles(run.fixes),
                "coverage": notebook["coverage"],
                "R-precision": notebook["r_precision"],
                "overlap": int(notebook["overlap"]),
                "fixed model's coverage": summary.loc[explore.FIXED, "coverage"],
                "fixed model's R-precision": summary.loc[explore.FIXED, "r_precision"],
            }
        )
    return pd.DataFrame(rows)
