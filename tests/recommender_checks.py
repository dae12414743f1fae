"""Checks every Recommender must pass, in the style of benfred/implicit's `RecommenderBaseTestMixin`.

Reuse for a new model (ease, als, neural, ...) in its own test module:

    from recommender_checks import RecommenderBaseTestMixin
    from songrec.models import make_model

    class TestEASE(RecommenderBaseTestMixin):
        def make_model(self):
            return make_model("ease", l2=100.0)      # small and fast settings for tests

A slow model can also override `fit_model` (e.g. a callback that stops early) or the class-scoped
`fit_corpus` fixture (fewer playlists; keep `@pytest.fixture(scope="class")` over `@classmethod`).
The fitted model is shared by the tests of the class. All data comes from the generated demo set
in conftest.py (600 playlists, seed 0). A check that does not apply to a model is overridden in
its class with a test of what it does instead (see TestPopularity in test_models.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from songrec.corpus import Corpus
from songrec.models import load_model
from songrec.models.base import NotFittedError, Recommender
from songrec.settings import SettingError, specs
from songrec.synthetic import genre_of_name

N = 50


def genre_rows(corpus: Corpus, genre: str) -> list[int]:
    """Rows of playlists generated for a genre (known from the playlist name)."""
    return [row for row, name in enumerate(corpus.playlists["name"]) if genre_of_name(name) == genre]


class RecommenderBaseTestMixin:
    """Subclass as `Test<Model>(RecommenderBaseTestMixin)` and implement `make_model()`."""

    n = N
    """Recommendations asked for in most checks."""
    cases_checked = 30
    """Challenge cases each check runs (the first of the demo held-out cases)."""
    min_genre_share = 0.6
    """Share of the top 15 of a genre playlist that must be of its genre (mean over playlists)."""

    def make_model(self) -> Recommender:
        """A new, unfitted model with settings that fit in a second or two on the demo data."""
        raise NotImplementedError

    def fit_model(self, model: Recommender, corpus: Corpus, callback=None) -> Recommender:
        return model.fit(corpus, callback=callback)

    # Class-scoped fixtures are classmethods (pytest's rule); they call the hooks on a fresh instance.

    @pytest.fixture(scope="class")
    @classmethod
    def fit_corpus(cls, demo_split: tuple[Corpus, Corpus]) -> Corpus:
        """The playlists the model learns from (the demo training part, 480 playlists)."""
        return demo_split[0]

    @pytest.fixture(scope="class")
    @classmethod
    def fit_events(cls) -> list:
        """The progress reports of the class's one fit (filled by the `model` fixture)."""
        return []

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, fit_corpus: Corpus, fit_events: list) -> Recommender:
        """The model fitted once per test class, its progress reports kept in `fit_events`."""
        checks = cls()
        return checks.fit_model(checks.make_model(), fit_corpus, callback=fit_events.append)

    @pytest.fixture(scope="class")
    @classmethod
    def cases(cls, demo_cases: list) -> list:
        return demo_cases[: cls.cases_checked]

    # --- what every recommendation list must be --------------------------------------------------------

    def test_is_a_recommender(self, model: Recommender, fit_corpus: Corpus) -> None:
        assert isinstance(model, Recommender)
        assert model.name
        assert model.track_uris == fit_corpus.tracks["uri"].tolist()
        assert model.n_tracks == fit_corpus.n_tracks

    def test_at_most_n_distinct_ids_best_first(self, model: Recommender, cases: list) -> None:
        for case in cases:
            for n in (0, 1, 15, self.n):
                ids, scores = model.recommend(case.seeds, case.title, n)
                assert ids.dtype.kind == "i"
                assert len(ids) == len(scores) == n, "the fallbacks fill every list on the demo data"
                assert len(np.unique(ids)) == len(ids)
                assert ((ids >= 0) & (ids < model.n_tracks)).all()
                # the model's own scores first, best first; fills (NaN) after them
                scored = ~np.isnan(scores)
                first_fill = int(np.argmin(scored)) if not scored.all() else len(scored)
                assert not scored[first_fill:].any()
                assert np.all(np.diff(scores[scored]) <= 1e-6)

    def test_never_a_seed_nor_an_excluded_id(self, model: Recommender, cases: list) -> None:
        for case in cases:
            exclude = case.truth[:5]
            ids, _ = model.recommend(case.seeds, case.title, self.n, exclude=exclude)
            assert not np.isin(ids, case.seeds).any()
            assert not np.isin(ids, exclude).any()
            assert len(ids) == self.n

    def test_title_only_playlists(self, model: Recommender) -> None:
        for title in ("country", "Christmas", "a title nobody ever used", "", None):
            ids, scores = model.recommend([], title, self.n)
            assert len(ids) == len(np.unique(ids)) == self.n, title
            assert len(scores) == self.n

    def test_all_unknown_seeds(self, model: Recommender) -> None:
        unknown = [-1, -1, -1, model.n_tracks + 7]
        for title in (None, "rap"):
            ids, _ = model.recommend(unknown, title, self.n)
            assert len(ids) == len(np.unique(ids)) == self.n
            assert ((ids >= 0) & (ids < model.n_tracks)).all()

    def test_unknown_seeds_are_ignored(self, model: Recommender, cases: list) -> None:
        case = next(c for c in cases if len(c.seeds) >= 5)
        with_unknown = np.r_[-1, case.seeds, -1]
        assert np.array_equal(
            model.recommend(with_unknown, case.title, 20)[0], model.recommend(case.seeds, case.title, 20)[0]
        )

    def test_batch_matches_one_at_a_time(self, model: Recommender, cases: list) -> None:
        batch = model.recommend_batch([c.seeds for c in cases], [c.title for c in cases], 20)
        assert len(batch) == len(cases)
        for case, (ids, _) in zip(cases, batch, strict=True):
            assert np.array_equal(ids, model.recommend(case.seeds, case.title, 20)[0])

    def test_recommend_uris(self, model: Recommender, fit_corpus: Corpus) -> None:
        seeds = fit_corpus.tracks["uri"].to_numpy()[fit_corpus.playlist_tracks(0)[:5]].tolist()
        uris = model.recommend_uris([*seeds, "spotify:track:not-in-the-corpus"], None, 20)
        assert len(uris) == len(set(uris)) == 20
        assert not set(uris) & set(seeds)
        assert set(uris) <= set(model.track_uris)

    # --- fitting ----------------------------------------------------------------------------------------

    def test_fit_reports_progress_up_to_the_end(self, model: Recommender, fit_events: list) -> None:
        assert fit_events, "fit(callback=...) must report progress"
        fractions = [event.fraction for event in fit_events]
        assert all(0.0 <= f <= 1.0 for f in fractions)
        assert fractions[-1] == 1.0
        assert all(isinstance(event.label, str) and event.label for event in fit_events)

    def test_an_unfitted_model_says_so(self, tmp_path: Path) -> None:
        unfitted = self.make_model()
        with pytest.raises(NotFittedError, match=f"{unfitted.name} model is not fitted"):
            unfitted.recommend([0, 1], None, 10)
        with pytest.raises(NotFittedError, match="before saving"):
            unfitted.save(tmp_path / "unfitted.safetensors")
        assert not (tmp_path / "unfitted.safetensors").exists()

    def test_settings_are_checked(self) -> None:
        """Every setting is typed: a value of the wrong type is refused with the setting's name."""
        model = self.make_model()
        for cls in model.settings_classes:
            for spec in specs(cls):
                with pytest.raises(SettingError, match=spec.name):
                    type(model)(**{spec.name: "not a value" if spec.kind is not str else 12})
        with pytest.raises(SettingError, match="unknown"):
            type(model)(no_such_setting=1)

    # --- saving -----------------------------------------------------------------------------------------

    def test_save_load_round_trip(self, model: Recommender, cases: list, tmp_path: Path) -> None:
        path = tmp_path / f"{model.name}.safetensors"
        model.save(path)
        loaded = load_model(path)
        assert type(loaded) is type(model)
        assert loaded.config() == model.config()
        assert loaded.track_uris == model.track_uris
        assert type(model).load(path).config() == model.config()
        queries = [(c.seeds, c.title) for c in cases] + [([], "country"), ([], None), ([-1], "xmas")]
        for seeds, title in queries:
            ids, scores = model.recommend(seeds, title, self.n)
            loaded_ids, loaded_scores = loaded.recommend(seeds, title, self.n)
            np.testing.assert_array_equal(loaded_ids, ids)
            np.testing.assert_array_equal(loaded_scores, scores)  # NaN fills compare equal

    # --- the genres of the demo data ------------------------------------------------------------------------

    @staticmethod
    def genre_playlist(corpus: Corpus, genre: str) -> tuple[np.ndarray, str]:
        """(first 10 tracks, name) of the first held-out playlist generated for a genre."""
        row = genre_rows(corpus, genre)[0]
        return corpus.playlist_tracks(row)[:10].astype(np.int64), str(corpus.playlists["name"].iat[row])

    def country_and_christmas_top15(self, model: Recommender, test: Corpus) -> tuple[list[int], list[int]]:
        """Top 15 for a country and a christmas playlist, both excluding the seeds of both
        (so a model that ignores the seeds gives the very same list)."""
        country, country_name = self.genre_playlist(test, "country")
        christmas, christmas_name = self.genre_playlist(test, "christmas")
        both = np.r_[country, christmas]
        a, _ = model.recommend(country, country_name, 15, exclude=both)
        b, _ = model.recommend(christmas, christmas_name, 15, exclude=both)
        assert len(a) == len(b) == 15
        return a.tolist(), b.tolist()

    def test_country_and_christmas_get_different_lists(self, model: Recommender, demo_split) -> None:
        country, christmas = self.country_and_christmas_top15(model, demo_split[1])
        assert country != christmas
        assert len(set(country) & set(christmas)) < 8

    def test_top15_mostly_of_the_seed_genre(self, model: Recommender, demo_split, demo_track_genres) -> None:
        test = demo_split[1]
        shares = []
        for genre in ("country", "christmas", "hip-hop", "rock"):
            for row in genre_rows(test, genre)[:5]:
                ids, _ = model.recommend(test.playlist_tracks(row)[:10], None, 15)
                shares.append(float(np.mean(demo_track_genres[ids] == genre)))
        assert np.mean(shares) >= self.min_genre_share, shares
