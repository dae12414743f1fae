"""Every recommender, by the name the CLI and app use."""

from __future__ import annotations

import importlib
import os

from songrec.checkpoint import checkpoint_kind
from songrec.models.base import Recommender

_MODELS = {
    "popularity": ("songrec.models.popularity", "PopularityRecommender"),
    "itemknn": ("songrec.models.itemknn", "ItemKNNRecommender"),
    "ease": ("songrec.models.ease", "EASERecommender"),
    "als": ("songrec.models.als", "ALSRecommender"),
    "neural": ("songrec.models.neural", "NeuralRecommender"),
    "hybrid": ("songrec.models.hybrid", "HybridRecommender"),
}
MODEL_NAMES = tuple(_MODELS)


def model_class(name: str) -> type[Recommender]:
    """The class for a model name; heavy modules (torch, implicit) load only when asked for."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
    module, attribute = _MODELS[name]
    return getattr(importlib.import_module(module), attribute)


def make_model(name: str, **params) -> Recommender:
    return model_class(name)(**params)


def load_model(path: str | os.PathLike) -> Recommender:
    """Any saved model: the checkpoint header names its kind."""
    return model_class(checkpoint_kind(path)).load(path)
