"""Every recommender, by the name the CLI and app use: the one registry of models.

Adding a model is one file (a Recommender subclass with its settings class) and one line below, or,
from outside the package, one call of `register_model`. The CLI's `--model` help, `evaluate`, the
shared test mixin and the app's model lists all read this registry.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from songrec.checkpoint import CheckpointError, CheckpointSource, read_checkpoint
from songrec.errors import UserError
from songrec.models.base import Recommender


@dataclass(frozen=True)
class ModelEntry:
    """Where a model lives; the module is imported only when the model is asked for (torch is heavy)."""

    target: str | type[Recommender]
    """"module:Class", or the class itself."""
    summary: str


_REGISTRY: dict[str, ModelEntry] = {
    "popularity": ModelEntry("songrec.models.popularity:PopularityRecommender", "the most frequent tracks"),
    "itemknn": ModelEntry("songrec.models.itemknn:ItemKNNRecommender", "tracks that share playlists with the seeds"),
    "ease": ModelEntry("songrec.models.ease:EASERecommender", "closed-form item-item linear model (Steck 2019)"),
    "als": ModelEntry("songrec.models.als:ALSRecommender", "implicit-feedback matrix factorisation"),
    "neural": ModelEntry("songrec.models.neural:NeuralRecommender", "the notebook's network, made to work"),
    "notebook": ModelEntry("songrec.models.notebook:NotebookRecommender", "the student notebook, trained as it was"),
    "hybrid": ModelEntry("songrec.models.hybrid:HybridRecommender", "several models' candidates re-ranked by LightGBM"),
}


def register_model(name: str, target: str | type[Recommender], summary: str = "") -> None:
    """Make a model available under `name` everywhere (CLI, evaluation, app lists)."""
    _REGISTRY[name] = ModelEntry(target, summary)


def unregister_model(name: str) -> None:
    _REGISTRY.pop(name, None)


def model_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def model_summaries() -> dict[str, str]:
    """Name -> one line, for `--help` and the app's model pickers (no model module is imported)."""
    return {name: entry.summary for name, entry in _REGISTRY.items()}


def model_class(name: str) -> type[Recommender]:
    """The class for a model name; heavy modules (torch, implicit) load only when asked for."""
    entry = _REGISTRY.get(name)
    if entry is None:
        raise UserError(f"unknown model {name!r}; choose from {', '.join(_REGISTRY)}")
    if isinstance(entry.target, type):
        return entry.target
    module, attribute = entry.target.split(":")
    return getattr(importlib.import_module(module), attribute)


def make_model(name: str, **params) -> Recommender:
    """A new model with its settings as keyword arguments (`make_model("als", factors=64)`)."""
    return model_class(name)(**params)


def load_model(source: CheckpointSource) -> Recommender:
    """Any saved model (a path, bytes or an open binary file): the checkpoint header names its kind."""
    checkpoint = read_checkpoint(source)
    try:
        cls = model_class(checkpoint.kind)
    except ValueError as exc:
        raise CheckpointError(f"{checkpoint.name}: {exc}") from None
    return cls.load(checkpoint)
