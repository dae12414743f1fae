"""Computations worth keeping between reruns: t-SNE maps, genre labels, SVD vectors, and the genre keywords.

Each cached function takes a key naming what its unhashed (underscore) arguments are, so Streamlit
never hashes a corpus or a matrix: a model token (model + dataset) or a dataset key.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from songrec.corpus import Corpus
from songrec.ui.session import current


def keywords() -> dict[str, list[str]]:
    """This user's genre keywords (the defaults until they edit them on the Genre validation page)."""
    from songrec.genres import DEFAULT_KEYWORDS

    return current().settings.setdefault("keywords", {g: list(w) for g, w in DEFAULT_KEYWORDS.items()})


def set_keywords(chosen: dict[str, list[str]]) -> None:
    current().settings["keywords"] = {g: list(w) for g, w in chosen.items()}


def keywords_key(keywords: dict[str, list[str]]) -> tuple:
    return tuple((genre, tuple(words)) for genre, words in keywords.items())


@st.cache_data(show_spinner=False, max_entries=8)
def tsne_map(token: str, n: int, perplexity: float, _ids: np.ndarray, _vectors: np.ndarray, _corpus: Corpus):
    """t-SNE of one model's embeddings (token names model + dataset, so the unhashed arrays are fixed)."""
    from songrec.projection import track_projection

    del token
    return track_projection(_ids, _vectors, _corpus, n=n, perplexity=perplexity)


@st.cache_data(show_spinner=False, max_entries=8)
def genre_labels(dataset_key: str, keywords_key: tuple, _corpus: Corpus):
    """The GenreLabels (playlist and track genres, per-track counts) of a dataset for some keyword lists."""
    from songrec.genres import genre_labels as compute

    del dataset_key
    return compute(_corpus, {genre: list(words) for genre, words in keywords_key})


@st.cache_data(show_spinner=False, max_entries=4)
def svd_vectors(dataset_key: str, _corpus: Corpus) -> tuple[np.ndarray, np.ndarray]:
    from songrec.projection import svd_embeddings

    del dataset_key
    return svd_embeddings(_corpus)
