"""Training the neural model in the background: the settings it takes, its job, and collecting its result.

The job belongs to the user's server-side session, so a reload re-attaches to it (its progress shows
again and its model is collected by whichever tab of that session runs first after it ends). Jobs
go through the server's `TrainingQueue`: at most SONGREC_MAX_TRAININGS run at once, later ones wait.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from songrec.corpus import Corpus
from songrec.settings import SettingSpec
from songrec.ui.datasets import dataset
from songrec.ui.jobs import FitJob
from songrec.ui.models import ModelEntry, add_model
from songrec.ui.session import current, training_queue

FORM = "neural"
"""The settings name the Train page's choices are saved under (the Evaluation page reads them too)."""


def _legacy_specs() -> list[tuple[str, list[SettingSpec]]]:
    """The neural settings described from TrainConfig, until the model declares its settings classes."""
    from songrec.config import TrainConfig

    d = TrainConfig()

    def spec(name: str, label: str, help: str, low=None, high=None, step=None, choices=(), log=False) -> SettingSpec:
        default = getattr(d, name)
        return SettingSpec(name, type(default), default, help, label, low, high, tuple(choices), step, log)

    return [
        ("Data", [spec("max_files", "Files to load", "train on the first N loaded slice files (0: all)", 0, 10**6)]),
        (
            "Network",
            [
                spec("embedding_dim", "Embedding size", "size of each track embedding", 4, 1024, 8),
                spec("hidden_dim", "Hidden size", "width of the two residual MLPs", 4, 4096, 8),
                spec("dropout", "Dropout", "dropout on the seed embeddings while training", 0.0, 0.9, 0.05),
                spec("members", "Networks", "networks trained side by side from different random starts", 1, 8),
                spec("min_track_count", "Min track count", "tracks in fewer playlists are not scored", 1, 10**6),
            ],
        ),
        (
            "Training",
            [
                spec("learning_rate", "Learning rate", "peak AdamW learning rate", 1e-6, 1.0, 1e-4, log=True),
                spec("epochs", "Epochs", "passes over the training playlists", 1, 1000),
                spec("batch_size", "Batch size", "playlists per step", 1, 8192),
                spec("targets_per_playlist", "Targets per playlist", "withheld tracks scored per step", 1, 1000),
                spec("seed", "Seed", "seeds the weights and the batches", 0, 2**31 - 1),
                spec("device", "Device", "auto picks CUDA, then Apple MPS, else CPU", choices=_DEVICES),
            ],
        ),
    ]


_DEVICES = ("auto", "cpu", "cuda", "mps")


def setting_groups(files: int, devices: list[str]) -> list[tuple[str, list[SettingSpec]]]:
    """(title, specs) of the neural model's settings, narrowed to this server: at most `files` files to load,
    only the devices its torch can use."""
    groups = _legacy_specs()
    narrowed = []
    for title, specs in groups:
        shown = []
        for spec in specs:
            if spec.name == "max_files":
                spec = dataclasses.replace(spec, high=files, help=f"{spec.help}; {files} loaded")
            elif spec.name == "device":
                spec = dataclasses.replace(spec, choices=tuple(c for c in spec.choices if c == "auto" or c in devices))
            shown.append(spec)
        narrowed.append((title, shown))
    return narrowed


def saved_settings() -> dict[str, Any]:
    """The neural settings this user chose last (empty: the defaults)."""
    return dict(current().settings.get(FORM, {}))


def train_job() -> FitJob | None:
    return current().train_job


def start_training(values: dict[str, Any], train_corpus: Corpus) -> FitJob:
    """Queue a neural model with these settings on the server's training queue; one job per user at a time.

    Raises SettingError (a ValueError naming the setting and its range) for a value out of range.
    """
    from songrec.models import make_model

    user = current()
    params = {k: v for k, v in values.items() if k != "max_files"}
    model = make_model("neural", **params)
    with user.lock:
        if user.busy:  # another tab of this session started one first
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
