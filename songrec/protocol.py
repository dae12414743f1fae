"""The RecSys Challenge 2018 protocol: held-out playlists become cases of ten seed categories."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from songrec.corpus import Corpus


@dataclass(frozen=True)
class Category:
    name: str
    n_seeds: int
    with_title: bool
    random_seeds: bool = False


CATEGORIES: tuple[Category, ...] = (
    Category("title only", 0, True),
    Category("title + first 1", 1, True),
    Category("title + first 5", 5, True),
    Category("first 5", 5, False),
    Category("title + first 10", 10, True),
    Category("first 10", 10, False),
    Category("title + first 25", 25, True),
    Category("title + random 25", 25, True, True),
    Category("title + first 100", 100, True),
    Category("title + random 100", 100, True, True),
)
CATEGORY_NAMES = tuple(c.name for c in CATEGORIES)


@dataclass
class Case:
    """One held-out playlist as a recommender sees it (seeds, title) and as it is scored (truth)."""

    pid: int
    category: str
    title: str | None
    seeds: np.ndarray
    seed_positions: np.ndarray
    truth: np.ndarray
    truth_artists: np.ndarray
    num_tracks: int


def _split_row(
    tracks: np.ndarray, category: Category, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if category.random_seeds:
        positions = np.sort(rng.choice(len(tracks), size=category.n_seeds, replace=False))
    else:
        positions = np.arange(category.n_seeds)
    mask = np.zeros(len(tracks), dtype=bool)
    mask[positions] = True
    seeds = tracks[mask]
    withheld = tracks[~mask]
    _, first = np.unique(withheld, return_index=True)
    truth = withheld[np.sort(first)]
    return seeds, positions, truth[~np.isin(truth, seeds)]


def make_cases(
    corpus: Corpus,
    seed: int = 0,
    categories: tuple[Category, ...] = CATEGORIES,
    max_cases: int | None = None,
) -> list[Case]:
    """Assign each playlist to a category it fits (some track must stay withheld), balancing counts.

    Playlists are visited in a seeded random order; each goes to the fitting category with the
    fewest cases so far, so every category is filled about equally, as in the challenge set.
    """
    rng = np.random.default_rng(seed)
    lengths = corpus.lengths()
    counts = dict.fromkeys((c.name for c in categories), 0)
    cases: list[Case] = []
    for row in rng.permutation(corpus.n_playlists):
        tracks = corpus.playlist_tracks(int(row))
        fitting = [c for c in categories if lengths[row] > c.n_seeds and len(np.unique(tracks[c.n_seeds :])) > 0]
        if not fitting:
            continue
        category = min(fitting, key=lambda c: counts[c.name])
        seeds, positions, truth = _split_row(tracks, category, rng)
        if len(truth) == 0:
            continue
        counts[category.name] += 1
        cases.append(
            Case(
                pid=int(corpus.playlists["pid"].iat[row]),
                category=category.name,
                title=str(corpus.playlists["name"].iat[row]) if category.with_title else None,
                seeds=seeds.astype(np.int64),
                seed_positions=positions.astype(np.int64),
                truth=truth.astype(np.int64),
                truth_artists=np.unique(corpus.track_artist[truth]),
                num_tracks=int(lengths[row]),
            )
        )
        if max_cases is not None and len(cases) >= max_cases:
            break
    return cases
