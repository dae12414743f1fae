"""Training the neural model in the background: the settings it takes, its job, and collecting its result.

The job belongs to the user's server-side session, so a reload re-attaches to it (its progress shows
again and its model is collected by whichever tab of that session runs first after it ends). Jobs
go through the server's `TrainingQueue`: at most SONGREC_MAX_TRAININGS run at once, later ones wait.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from songrec.config import DataSettings
from songrec.corpus import Corpus
from songrec.settings import Settings, SettingSpec, specs
from songrec.ui.datasets import dataset
from songrec.ui.jobs import FitJob
from songrec.ui.models import ModelEntry, add_model
from songrec.ui.session import current, training_queue

FORM = "neural"
"""The settings name the Train page's choices are saved under (the Evaluation page reads them too)."""


GROUP_TITLES = {"DataSettings": "Data", "NetworkSettings": "Network", "TrainSettings": "Training"}


def setting_classes() -> list[type[Settings]]:
    """What the Train page's form sets: the files to load, then the neural model's own settings classes."""
    from songrec.models import model_class

    return [DataSettings, *model_class("neural").settings_classes]


def setting_groups(files: int, devices: list[str]) -> list[tuple[str, list[SettingSpec]]]:
    """(title, specs) per settings class, narrowed to this server: at most `files` files to load, only the
    devices its torch can use (and auto)."""
    groups = []
    for cls in setting_classes():
        shown = []
        for spec in specs(cls):
            if spec.name == "max_files":
                spec = dataclasses.replace(spec, high=files, help=f"{spec.help}; {files} loaded")
            elif spec.name == "device":
                spec = dataclasses.replace(spec, choices=tuple(c for c in spec.choices if c == "auto" or c in devices))
            shown.append(spec)
        groups.append((GROUP_TITLES.get(cls.__name__, cls.__name__.removesuffix("Settings")), shown))
    return groups


def saved_settings() -> dict[str, Any]:
    """The neural settings this user chose last (empty: the defaults)."""
    return dict(current().settings.get(FORM, {}))


def model_settings() -> dict[str, Any]:
    """The neural model's keyword arguments from this user's last choice (the data settings left out)."""
    return {k: v for k, v in saved_settings().items() if k not in DataSettings.names()}


def train_job() -> FitJob | None:
    return current().train_job


def start_training(values: dict[str, Any], train_corpus: Corpus) -> FitJob:
    """Queue a neural model with these settings on the server's training queue; one job per user at a time.

    `values` holds every setting of `setting_classes()`; the data settings choose `train_corpus`, the
    rest are the model's keyword arguments. Raises SettingError (a ValueError naming the setting and its
    range, the CLI's message) for a value out of range.
    """
    from songrec.models import make_model

    user = current()
    DataSettings.build({k: v for k, v in values.items() if k in DataSettings.names()})
    model = make_model("neural", **{k: v for k, v in values.items() if k not in DataSettings.names()})
    with user.lock:
        if user.train_job is not None and user.train_job.running:  # another tab of this session started one first
            return user.train_job
        user.settings[FORM] = dict(values)
        job = FitJob(model, train_corpus, "neural", meta={"dataset_key": dataset().key, "settings": dict(values)})
        user.train_job = job
        return training_queue().submit(job)


def collect_training() -> None:
    """Once a training job has ended, keep its model (best epoch's weights) as the user's neural model."""
    user = current()
    with user.lock:
        job = user.train_job
        if job is None or job.running or user.collected_job is job:
            return
        user.collected_job = job
    if job.status in ("done", "stopped") and getattr(job.model, "network", None) is not None:
        note = "stopped early" if job.status == "stopped" else ""
        entry = ModelEntry(
            "neural", "neural", job.model, job.meta.get("dataset_key"), "trained", job.seconds, note=note
        )
        add_model(entry)
