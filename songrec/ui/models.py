"""A user's fitted models: fitting baselines, checkpoints in and out, and which model a page shows first.

The rule every page follows for its first model (`ordered_labels`): the most recently fitted,
trained or loaded model among those fitted on the dataset the user looks at now; when none was
fitted on it, the most recent of all. What you just made is what you see next; models fitted on
other data (matched to this data by Spotify URI) come after the ones fitted on it.
"""

from __future__ import annotations

import io
import itertools
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from songrec.corpus import Corpus
from songrec.settings import SettingSpec, specs
from songrec.ui.datasets import DatasetRef, corpus, dataset
from songrec.ui.session import current

_made = itertools.count()


@dataclass
class ModelEntry:
    """A fitted model and where it came from; `usable()` gives it in the current dataset's track ids."""

    label: str
    kind: str
    model: object
    dataset_key: str | None  # None: uploaded, trained on unknown data
    source: str = "fitted"  # fitted, trained, uploaded
    seconds: float = 0.0
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    note: str = ""
    made: int = field(default_factory=lambda: next(_made))
    """Order of making, server-wide: larger is more recent."""
    _aligned: dict = field(default_factory=dict, repr=False)

    def usable(self, ref: DatasetRef, data: Corpus):
        if self.dataset_key == ref.key:
            return self.model
        if ref.key not in self._aligned:
            from songrec.models.aligned import AlignedRecommender

            self._aligned.clear()
            self._aligned[ref.key] = AlignedRecommender(self.model, data)
        return self._aligned[ref.key]

    def describe(self, dataset_key: str | None = None) -> str:
        """One line: label, device, epochs, and "other data" when fitted on another dataset than the current one
        (`dataset_key`; by default the user's current dataset)."""
        parts = [self.label]
        model = self.model
        device = getattr(model, "device", None)
        if device is not None:
            parts.append(str(getattr(device, "type", device)))
        if hasattr(model, "epochs_trained"):
            best = getattr(model, "best_epoch", 0)
            epochs = model.epochs_trained
            parts.append(f"{epochs} epoch{'s' if epochs != 1 else ''}" + (f" (best {best})" if best else ""))
        if self.source == "uploaded":
            parts.append("uploaded")
        elif self.dataset_key != (dataset_key or dataset().key):
            parts.append("other data")
        return " · ".join(parts)


def models() -> dict[str, ModelEntry]:
    """This user's models by label, in the order they were made."""
    return current().models


def add_model(entry: ModelEntry) -> None:
    user = current()
    with user.lock:
        user.models.pop(entry.label, None)  # a refit is the most recent model again
        user.models[entry.label] = entry


def ordered_labels(labels: Iterable[str] | None = None) -> list[str]:
    """Model labels in the order pages offer them: the first is the one a page shows first (see the module doc).

    `labels` narrows the choice (a page that needs embeddings passes the models that have them).
    """
    entries = dict(models())  # a copy: another tab of this session may add a model meanwhile
    key = dataset().key
    chosen = [label for label in (entries if labels is None else labels) if label in entries]
    return sorted(chosen, key=lambda label: (entries[label].dataset_key != key, -entries[label].made))


def usable_models() -> dict[str, object]:
    """Every fitted model, speaking the current dataset's track ids."""
    ref, data = dataset(), corpus()
    return {label: entry.usable(ref, data) for label, entry in dict(models()).items()}


def model_token(label: str) -> str:
    """Names one model on one dataset, for caches of what the model computed there."""
    entry = models().get(label)
    return f"{entry.token}:{dataset().key}" if entry else ""


def fitted_here(kind: str) -> ModelEntry | None:
    """This user's model of that label, when fitted on the current dataset."""
    entry = models().get(kind)
    return entry if entry is not None and entry.dataset_key == dataset().key else None


def setting_specs(kind: str) -> list[SettingSpec]:
    """The settings a model takes (from its settings classes), for its form."""
    from songrec.models import model_class

    return [spec for cls in model_class(kind).settings_classes for spec in specs(cls)]


def saved_params(kind: str) -> dict:
    """The settings this user last fitted that model with (empty: its defaults)."""
    return dict(current().settings.get(f"model.{kind}", {}))


def fit_baseline(kind: str, **params) -> ModelEntry:
    """Fit a model on the current dataset in this run (with progress), store and return it.

    `params` are the model's keyword arguments; SettingError (naming the setting and its range) when one
    is out of range. The settings are remembered as this user's choice for that model.
    """
    from songrec.models import make_model

    data, ref = corpus(), dataset()
    made = make_model(kind, **params)
    current().settings[f"model.{kind}"] = dict(params)
    bar = st.progress(0.0, text=f"Fitting {kind}…")

    def callback(progress) -> None:
        bar.progress(progress.fraction, text=f"Fitting {kind}: {progress.label}")

    started = time.perf_counter()
    try:
        model = made.fit(data, callback=callback)
    finally:
        bar.empty()
    entry = ModelEntry(kind, kind, model, ref.key, "fitted", time.perf_counter() - started)
    add_model(entry)
    return entry


def ensure_baseline(kind: str = "popularity") -> ModelEntry:
    """The named baseline, fitted now if this user has none yet for the current data."""
    return fitted_here(kind) or fit_baseline(kind)


def checkpoint_bytes(model) -> bytes:
    """The model as safetensors checkpoint bytes (for a download button), made in memory."""
    buffer = io.BytesIO()
    model.save(buffer)
    return buffer.getvalue()


def load_checkpoint_upload(name: str, data: bytes) -> ModelEntry:
    """A model from uploaded checkpoint bytes (read in memory); CheckpointError naming the upload."""
    from songrec.models import load_model

    upload = io.BytesIO(data)
    upload.name = name  # how the checkpoint's messages name it
    model = load_model(upload)
    label = f"{model.name} (uploaded {Path(name).stem})"
    return ModelEntry(label, model.name, model, None, "uploaded", note=name)


def describer() -> Callable[[str], str]:
    """For a format_func: a label's one-line description (the label itself when it is not a model).

    Bound to this run's models and dataset, so it gives the same text when Streamlit calls it later.
    """
    entries, key = dict(models()), dataset().key
    return lambda label: entries[label].describe(key) if label in entries else label


ModelFilter = Callable[[object], bool]


def labels_where(keep: ModelFilter) -> list[str]:
    """The labels of this user's models that pass `keep`, in page order (see `ordered_labels`)."""
    return ordered_labels(label for label, entry in dict(models()).items() if keep(entry.model))
