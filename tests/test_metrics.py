"""RecSys Challenge 2018 metrics on cases small enough to check by hand (arithmetic in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from songrec.metrics import (
    MAX_CLICKS,
    clicks,
    coverage,
    evaluate,
    evaluate_model,
    hit_at,
    ndcg,
    r_precision,
    r_precision_with_artists,
    score_case,
)
from songrec.protocol import CATEGORY_NAMES, Case

# track id -> artist id for the hand-made cases: A=0, B=1, C=2, D=3
#            track: 0  1  2  3  4  5  6  7  8  9 10 11
ARTIST = np.array([3, 0, 0, 1, 2, 3, 2, 3, 2, 1, 3, 3])
TRUTH = np.array([1, 2, 3, 4])  # artists A, A, B, C
TRUTH_ARTISTS = np.unique(ARTIST[TRUTH])  # {A, B, C}


def arr(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def with_artists(recommended: np.ndarray) -> float:
    return r_precision_with_artists(recommended, TRUTH, ARTIST[recommended], TRUTH_ARTISTS)


# --- R-precision ------------------------------------------------------------------------------------


def test_r_precision_tracks_only() -> None:
    # |G| = 4, top 4 = [1, 9, 3, 8]: hits 1 and 3 -> 2 / 4
    assert r_precision(arr(1, 9, 3, 8, 2, 4), TRUTH) == 0.5
    # hits after the first |G| do not count: 2 and 4 sit at positions 5 and 6
    assert r_precision(arr(9, 8, 7, 6, 2, 4), TRUTH) == 0.0
    assert r_precision(arr(4, 3, 2, 1), TRUTH) == 1.0
    # fewer recommendations than |G|: still over |G| -> 1 / 4
    assert r_precision(arr(2), TRUTH) == 0.25
    assert r_precision(arr(1, 2), arr()) == 0.0


def test_r_precision_with_artist_credit() -> None:
    # top 4 = [1 (A, hit), 9 (B), 3 (B, hit), 8 (C)]: track hits 1, 3 -> artists A, B matched by tracks;
    # non-hits 9 (B: already matched by track 3, no credit) and 8 (C: credit 0.25)
    # (2 + 0.25) / 4 = 0.5625
    assert with_artists(arr(1, 9, 3, 8, 2, 4)) == pytest.approx(0.5625)


def test_artist_credit_counts_each_artist_once() -> None:
    # top 4 = [6 (C), 8 (C), 7 (D), 9 (B)]: no track hit; distinct truth artists among them: C, B
    # (0 + 2 * 0.25) / 4 = 0.125
    assert with_artists(arr(6, 8, 7, 9)) == pytest.approx(0.125)
    # the same artist C three times is still one credit: (0 + 0.25) / 4 = 0.0625
    assert with_artists(arr(6, 8, 7, 10, 4)) == pytest.approx(0.0625)


def test_artist_credit_only_within_top_g_and_only_for_truth_artists() -> None:
    # top 4 = [0, 5, 7, 10]: all artist D, not a truth artist -> 0; the C track 6 sits at position 5 -> 0
    assert with_artists(arr(0, 5, 7, 10, 6)) == 0.0
    # all four found: 4 / 4, no artist credit on top of a perfect score
    assert with_artists(arr(4, 3, 2, 1)) == 1.0


def test_artist_credit_not_given_for_an_artist_matched_by_a_track_hit() -> None:
    # top 4 = [2 (A, hit), 1 (A, hit), 0 (D), 11 (D)]: 2 / 4 = 0.5, no credit
    assert with_artists(arr(2, 1, 0, 11)) == 0.5
    # top 4 = [2 (A, hit), 9 (B), 0 (D), 11 (D)]: B is a truth artist not matched by a track hit
    # (1 + 0.25) / 4 = 0.3125
    assert with_artists(arr(2, 9, 0, 11)) == pytest.approx(0.3125)


def test_r_precision_always_at_least_tracks_only() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        recommended = rng.permutation(12)[: rng.integers(1, 12)]
        assert with_artists(recommended) >= r_precision(recommended, TRUTH)
        assert with_artists(recommended) <= 1.0


# --- NDCG with the challenge discount ------------------------------------------------------------------


def test_ndcg_with_the_challenge_discount() -> None:
    # weights: position 1 -> 1, position i >= 2 -> 1 / log2(i): 1, 1, 0.63093, 0.5, 0.43068
    # G = {1, 2, 3}, hits at positions 1, 3, 5: DCG = 1 + 1/log2(3) + 1/log2(5) = 2.06161
    # ideal: min(|G|, 5) = 3 hits on top: IDCG = 1 + 1 + 1/log2(3) = 2.63093 -> 0.78360
    dcg = 1 + 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 + 1 / math.log2(3)
    assert ndcg(arr(1, 9, 2, 8, 3), arr(1, 2, 3)) == pytest.approx(dcg / idcg)
    assert ndcg(arr(1, 9, 2, 8, 3), arr(1, 2, 3)) == pytest.approx(0.78360, abs=1e-5)


def test_ndcg_second_position_counts_as_much_as_the_first() -> None:
    # rel_1 + rel_2 / log2(2): one hit at position 2 scores 1 / 1 = 1 (1 / log2(3) = 0.63 with log2(i + 1))
    assert ndcg(arr(9, 1), arr(1)) == 1.0
    # a hit at position 3: 1 / log2(3) = 0.63093
    assert ndcg(arr(9, 8, 1), arr(1)) == pytest.approx(1 / math.log2(3))


def test_ndcg_ideal_over_min_of_truth_and_list_length() -> None:
    # |G| = 6 but only 2 recommendations, both hits: DCG = IDCG = 1 + 1 -> 1
    assert ndcg(arr(1, 2), arr(1, 2, 3, 4, 5, 6)) == 1.0
    # 3 recommendations, hits at 1 and 3: (1 + 0.63093) / (1 + 1 + 0.63093) = 0.61991
    assert ndcg(arr(1, 9, 2), arr(1, 2, 3, 4, 5, 6)) == pytest.approx((1 + 1 / math.log2(3)) / (2 + 1 / math.log2(3)))


def test_ndcg_edges() -> None:
    assert ndcg(arr(7, 8, 9), arr(1, 2)) == 0.0
    assert ndcg(arr(1, 2), arr()) == 0.0
    assert ndcg(arr(), arr(1)) == 0.0
    assert ndcg(arr(2, 1), arr(1, 2)) == 1.0


# --- clicks and hit@k -------------------------------------------------------------------------------------


def test_clicks() -> None:
    misses = np.arange(1000, 1500)
    first_hit_at_23 = misses.copy()
    first_hit_at_23[23] = 1
    first_hit_at_23[40] = 2
    # first relevant track at index 23 (0-based): floor(23 / 10) = 2 pages refreshed
    assert clicks(first_hit_at_23, arr(1, 2)) == 2
    assert clicks(arr(1, 5), arr(1)) == 0
    assert clicks(np.r_[misses[:9], 1], arr(1)) == 0  # index 9: still the first page
    assert clicks(np.r_[misses[:10], 1], arr(1)) == 1  # index 10: the second page
    # no relevant track: the maximum, 51
    assert clicks(misses, arr(1)) == MAX_CLICKS == 51
    # only the first 500 recommendations count
    assert clicks(np.r_[misses, 1], arr(1)) == 51


def test_hit_at_15() -> None:
    misses = np.arange(1000, 1100)
    at_14, at_15 = misses.copy(), misses.copy()
    at_14[14] = 1  # the 15th recommendation
    at_15[15] = 1  # the 16th
    assert hit_at(at_14, arr(1), 15) == 1.0
    assert hit_at(at_15, arr(1), 15) == 0.0
    assert hit_at(at_15, arr(1), 16) == 1.0
    assert hit_at(misses, arr(1)) == 0.0


# --- evaluation of whole case sets ----------------------------------------------------------------------


def make_case(pid: int, category: str, truth: list[int], seeds: list[int] = ()) -> Case:
    truth_array = np.array(truth, dtype=np.int64)
    return Case(
        pid=pid,
        category=category,
        title=None,
        seeds=np.array(seeds, dtype=np.int64),
        seed_positions=np.arange(len(seeds), dtype=np.int64),
        truth=truth_array,
        truth_artists=np.unique(ARTIST[truth_array]),
        num_tracks=len(seeds) + len(truth),
    )


CASES = [
    make_case(1, "first 5", [1, 2, 3, 4], [0, 5, 6, 7, 8]),
    make_case(2, "first 5", [3], [0, 5, 6, 7, 8]),
    make_case(3, "title only", [9, 10]),
]
ANSWERS = {1: arr(1, 9, 3, 8, 2, 4), 2: arr(11, 10, 3), 3: arr(0, 1, 2, 4)}


def test_score_case() -> None:
    scores = score_case(CASES[0], ANSWERS[1], ARTIST)
    assert scores == {
        "r_precision": pytest.approx(0.5625),  # see test_r_precision_with_artist_credit
        "r_precision_tracks": 0.5,
        "ndcg": pytest.approx(ndcg(ANSWERS[1], TRUTH)),
        "clicks": 0,
        "hit_at_15": 1.0,
    }


def test_evaluate_averages_overall_and_per_category() -> None:
    calls = []
    result = evaluate(lambda case: ANSWERS[case.pid], CASES, ARTIST, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    # case 1: R-prec 0.5625, tracks 0.5, clicks 0
    # case 2: G = {3}, top 1 = [11 (D)], no hit, D is not the truth artist B -> 0; first hit index 2 -> 0 clicks
    # case 3: G = {9, 10}, top 2 = [0 (D), 1 (A)]: no hit; truth artists B, D: D credited -> 0.25 / 2 = 0.125;
    #         no hit at all -> 51 clicks, hit@15 0
    assert list(result.per_category) == ["title only", "first 5"]  # challenge order, only those present
    first5 = result.per_category["first 5"]
    assert first5.cases == 2
    assert first5.r_precision == pytest.approx((0.5625 + 0.0) / 2)
    assert first5.r_precision_tracks == pytest.approx(0.25)
    assert first5.clicks == 0
    assert first5.hit_at_15 == 1.0
    title_only = result.per_category["title only"]
    assert (title_only.r_precision, title_only.ndcg, title_only.clicks, title_only.cases) == (0.125, 0.0, 51, 1)
    # overall: the mean over cases (not over categories)
    assert result.overall.cases == 3
    assert result.overall.r_precision == pytest.approx((0.5625 + 0 + 0.125) / 3)
    assert result.overall.clicks == pytest.approx(51 / 3)
    assert result.overall.hit_at_15 == pytest.approx(2 / 3)
    as_dict = result.as_dict()
    assert set(as_dict) == {"overall", "per_category"}
    assert set(as_dict["overall"]) == {
        "r_precision",
        "r_precision_tracks",
        "ndcg",
        "clicks",
        "hit_at_15",
        "cases",
        "coverage",
    }
    # coverage: distinct tracks of the top 15s over 15 x cases; answers 1 and 2 share track 3, 1 and 3 share 1, 2, 4
    assert result.overall.coverage == pytest.approx(9 / (15 * 3))
    assert first5.coverage == pytest.approx(8 / (15 * 2))
    assert title_only.coverage == pytest.approx(4 / 15)


def test_coverage_counts_distinct_tracks_of_each_top_15() -> None:
    same = [np.arange(15), np.arange(15), np.arange(15)]
    assert coverage(same) == pytest.approx(1 / 3)  # the notebook's collapse: one list for every playlist
    assert coverage([np.arange(15), np.arange(15, 30)]) == 1.0
    assert coverage([np.arange(100), np.arange(15, 100)]) == pytest.approx(30 / 30)  # only the top 15 count
    assert coverage([np.arange(5)]) == pytest.approx(5 / 15)  # a short list still has 15 places
    assert math.isnan(coverage([]))


def test_evaluate_without_cases() -> None:
    result = evaluate(lambda case: arr(), [], ARTIST)
    assert result.overall.cases == 0 and math.isnan(result.overall.r_precision)
    assert result.per_category == {}


class FixedAnswers:
    """Just enough of a Recommender for evaluate_model: answers by the first seed or the truth."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def recommend_batch(self, seed_lists, titles, n=500, excludes=None):
        self.batches.append(len(seed_lists))
        answers = []
        for seeds in seed_lists:
            pid = 3 if len(seeds) == 0 else (1 if len(answers) % 2 == 0 else 2)
            answers.append((ANSWERS[pid][:n], np.zeros(min(n, len(ANSWERS[pid])), np.float32)))
        return answers


def test_evaluate_model_batches_and_matches_evaluate() -> None:
    model = FixedAnswers()
    calls = []
    result = evaluate_model(model, CASES, ARTIST, batch_size=2, progress=lambda d, t: calls.append((d, t)))
    assert model.batches == [2, 1]
    assert calls == [(2, 3), (3, 3)]
    expected = evaluate(lambda case: ANSWERS[case.pid], CASES, ARTIST)
    assert result.as_dict() == expected.as_dict()
    assert set(result.per_category) <= set(CATEGORY_NAMES)
