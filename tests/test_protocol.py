"""The challenge protocol: held-out playlists become cases of ten seed categories."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from factories import corpus_of, playlist, track

from songrec.corpus import Corpus
from songrec.protocol import CATEGORIES, CATEGORY_NAMES, make_cases

BY_NAME = {c.name: c for c in CATEGORIES}


@pytest.fixture(scope="module")
def long_corpus() -> Corpus:
    """60 playlists of 120 tracks (every category fits every playlist), some tracks repeated."""
    rng = np.random.default_rng(7)
    playlists = []
    for pid in range(60):
        ids = rng.choice(400, size=120, replace=False)
        ids[110:115] = ids[:5]  # the first five again near the end: seeds of "first 5" must not be truth
        ids[116] = ids[115]  # a repeat inside the withheld part: truth lists it once
        tracks = [track(f"spotify:track:{i}", artist=f"artist {i % 37}") for i in ids]
        playlists.append(playlist(pid, tracks, name=f"list {pid}"))
    return corpus_of(playlists)


def check_case(case, corpus: Corpus) -> None:
    row = int(np.flatnonzero(corpus.playlists["pid"] == case.pid)[0])
    tracks = corpus.playlist_tracks(row)
    category = BY_NAME[case.category]
    assert len(case.seeds) == len(case.seed_positions) == category.n_seeds
    assert np.array_equal(tracks[case.seed_positions], case.seeds)
    assert len(np.unique(case.seed_positions)) == len(case.seed_positions)
    assert np.all(np.diff(case.seed_positions) > 0)
    if not category.random_seeds:
        assert case.seed_positions.tolist() == list(range(category.n_seeds))
    # truth: every withheld track once, in playlist order, none of them a seed
    assert len(case.truth) > 0
    assert len(np.unique(case.truth)) == len(case.truth)
    assert not np.isin(case.truth, case.seeds).any()
    withheld = np.delete(tracks, case.seed_positions)
    expected = [t for i, t in enumerate(withheld.tolist()) if t not in withheld[:i] and t not in case.seeds]
    assert case.truth.tolist() == expected
    assert case.num_tracks == len(tracks)
    assert np.array_equal(case.truth_artists, np.unique(corpus.track_artist[case.truth]))
    if category.with_title:
        assert case.title == corpus.playlists["name"].iat[row]
    else:
        assert case.title is None


def test_ten_challenge_categories() -> None:
    assert len(CATEGORIES) == 10 == len(set(CATEGORY_NAMES))
    assert sorted(c.n_seeds for c in CATEGORIES) == [0, 1, 5, 5, 10, 10, 25, 25, 100, 100]
    assert {c.name for c in CATEGORIES if not c.with_title} == {"first 5", "first 10"}
    assert {c.name for c in CATEGORIES if c.random_seeds} == {"title + random 25", "title + random 100"}


def test_cases_of_long_playlists(long_corpus: Corpus) -> None:
    cases = make_cases(long_corpus, seed=0)
    assert len(cases) == 60
    assert len({c.pid for c in cases}) == 60
    for case in cases:
        check_case(case, long_corpus)


def test_categories_balanced_when_every_playlist_fits(long_corpus: Corpus) -> None:
    counts = Counter(c.category for c in make_cases(long_corpus, seed=1))
    assert set(counts) == set(CATEGORY_NAMES)
    assert set(counts.values()) == {6}


def test_repeated_tracks_are_neither_seed_and_truth_nor_twice_in_truth(long_corpus: Corpus) -> None:
    first5 = [c for c in make_cases(long_corpus, seed=0) if c.category == "first 5"]
    assert first5
    for case in first5:
        # the playlist holds 120 entries: 5 seeds, 5 repeats of the seeds and one repeat in the rest
        assert len(case.truth) == 120 - 5 - 5 - 1


def test_demo_cases_are_valid_and_balanced(demo_corpus: Corpus) -> None:
    cases = make_cases(demo_corpus, seed=0)
    assert len(cases) == demo_corpus.n_playlists
    for case in cases:
        check_case(case, demo_corpus)
    counts = Counter(c.category for c in cases)
    assert set(counts) == set(CATEGORY_NAMES)
    # categories with up to 25 seeds: within one case of each other
    short = [counts[c.name] for c in CATEGORIES if c.n_seeds <= 25]
    assert max(short) - min(short) <= 1
    # the 100-seed categories share the playlists long enough for them about equally
    long_enough = int((demo_corpus.lengths() > 100).sum())
    hundred = [counts["title + first 100"], counts["title + random 100"]]
    assert abs(hundred[0] - hundred[1]) <= 1
    assert sum(hundred) >= 0.9 * long_enough


def test_title_absent_exactly_in_no_title_categories(demo_cases: list) -> None:
    for case in demo_cases:
        assert (case.title is None) == (case.category in ("first 5", "first 10"))


def test_random_categories_are_not_a_prefix(demo_corpus: Corpus) -> None:
    cases = make_cases(demo_corpus, seed=0)
    for name in ("title + random 25", "title + random 100"):
        chosen = [c for c in cases if c.category == name]
        assert chosen
        prefixes = [c.seed_positions.tolist() == list(range(len(c.seeds))) for c in chosen]
        assert not any(prefixes)
        # seeds spread over the playlist, not only its start
        assert max(int(c.seed_positions.max()) for c in chosen) > 2 * BY_NAME[name].n_seeds


def test_seeded_and_reproducible(demo_corpus: Corpus) -> None:
    def summary(cases):
        return [(c.pid, c.category, c.seed_positions.tolist()) for c in cases]

    assert summary(make_cases(demo_corpus, seed=3)) == summary(make_cases(demo_corpus, seed=3))
    assert summary(make_cases(demo_corpus, seed=3)) != summary(make_cases(demo_corpus, seed=4))


def test_max_cases(demo_corpus: Corpus) -> None:
    cases = make_cases(demo_corpus, seed=0, max_cases=25)
    assert len(cases) == 25
    full = make_cases(demo_corpus, seed=0)
    assert [(c.pid, c.category) for c in cases] == [(c.pid, c.category) for c in full[:25]]


def test_short_playlists_only_get_categories_they_fit() -> None:
    corpus = corpus_of([playlist(pid, [f"t{pid}-{i}" for i in range(6)]) for pid in range(30)])
    cases = make_cases(corpus, seed=0)
    assert len(cases) == 30
    # 6 tracks: at most 5 seeds, and one track must stay withheld
    assert {BY_NAME[c.category].n_seeds for c in cases} <= {0, 1, 5}
    assert set(Counter(c.category for c in cases).values()) == {7, 8}  # 30 over 4 categories


def test_playlist_whose_withheld_tracks_are_all_seeds_is_skipped() -> None:
    corpus = corpus_of([playlist(1, ["a"] * 6), playlist(2, ["b", "c", "d", "e", "f", "g"])])
    first5 = (BY_NAME["first 5"],)
    cases = make_cases(corpus, seed=0, categories=first5)
    assert [(c.pid, c.truth.tolist()) for c in cases] == [(2, [corpus.track_ids(["g"])[0]])]
    title_only = make_cases(corpus, seed=0, categories=(BY_NAME["title only"],))
    assert sorted(len(c.truth) for c in title_only) == [1, 6]
