"""The hybrid model: the shared checks, no leakage into the ranker, its checkpoint, progress and its features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from recommender_checks import RecommenderBaseTestMixin

from songrec.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from songrec.cli import main
from songrec.corpus import Corpus
from songrec.models import load_model, make_model
from songrec.models.base import Recommender
from songrec.models.hybrid import HybridProgress, HybridRecommender, HybridSettings
from songrec.models.title import TitleModel
from songrec.ranking_features import CONTEXT_FEATURES, CorpusStats, build_candidates, feature_names, labels
from songrec.settings import SettingError

FAST = {
    "members": "als,itemknn,title:30",
    "candidates": 60,
    "rounds": 40,
    "early_stopping": 10,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "threads": 1,
}
"""Small settings: the demo fit takes about a second."""


class TestHybrid(RecommenderBaseTestMixin):
    def make_model(self) -> Recommender:
        return make_model("hybrid", **FAST)

    def test_ranker_never_sees_the_evaluated_cases(self, model: HybridRecommender, fit_corpus: Corpus, demo_split):
        """The ranker learns from training playlists the members were not fitted on, never from test playlists."""
        report = model.report
        assert model.ranker is not None and report.cases > 0 and report.rows > 0
        train_pids = set(fit_corpus.playlists["pid"].tolist())
        test_pids = set(demo_split[1].playlists["pid"].tolist())
        ranker_pids, member_pids = set(report.ranker_pids.tolist()), set(report.member_pids.tolist())
        assert ranker_pids and member_pids
        assert ranker_pids <= train_pids and member_pids <= train_pids
        assert not ranker_pids & test_pids
        assert not ranker_pids & member_pids
        assert len(ranker_pids) == round(len(train_pids) * model.settings.holdout_share)

    def test_saved_model_keeps_ranker_members_and_explanations(self, model: HybridRecommender, cases, tmp_path: Path):
        path = tmp_path / "hybrid.safetensors"
        model.save(path)
        loaded = load_model(path)
        assert list(loaded.members) == list(model.members) == ["als", "itemknn"]
        assert len(loaded.rankers) == len(model.rankers) == 2  # the default: a LambdaRank and an XE-NDCG ranker
        for mine, theirs in zip(model.rankers, loaded.rankers, strict=True):
            assert theirs.model_to_string() == mine.model_to_string()
        assert loaded.feature_importances().equals(model.feature_importances())
        for case in cases[:5]:
            ids, _ = model.recommend(case.seeds, case.title, 20)
            assert loaded.proposers(case.seeds, ids, case.title) == model.proposers(case.seeds, ids, case.title)

    def test_a_forged_ranker_is_refused(self, model: HybridRecommender, tmp_path: Path) -> None:
        path = tmp_path / "hybrid.safetensors"
        model.save(path)
        config, arrays, strings = load_checkpoint(path, "hybrid")
        for key in ("model.ranker", "model.ranker.1"):  # the first ranker, and the second of the defaults
            for forged, message in (
                ("import os; os.system('echo pwned')", "not a LightGBM model string"),
                ("tree\nversion=v4\nnum_class=oops\n", "not a readable LightGBM model"),
            ):
                saved = strings[key]
                strings[key] = [forged]
                save_checkpoint(path, "hybrid", config, arrays, strings)
                with pytest.raises(CheckpointError, match=f"{path.name}.*{message}"):
                    load_model(path)
                strings[key] = saved

    def test_a_ranker_for_other_features_is_refused(self, model: HybridRecommender, tmp_path: Path) -> None:
        path = tmp_path / "hybrid.safetensors"
        model.save(path)
        config, arrays, strings = load_checkpoint(path, "hybrid")
        ranker = "".join(strings["model.ranker"])
        strings["model.ranker"] = [
            ranker.replace("als_score", "als_guess")[i : i + 4000] for i in range(0, len(ranker), 4000)
        ]
        save_checkpoint(path, "hybrid", config, arrays, strings)
        with pytest.raises(CheckpointError, match="reads features"):
            load_model(path)

    def test_members_propose_the_candidates(self, model: HybridRecommender, cases) -> None:
        case = next(c for c in cases if len(c.seeds) >= 5 and c.title)
        ids, _ = model.recommend(case.seeds, case.title, 30)
        proposers = model.proposers(case.seeds, ids, case.title)
        assert len(proposers) == 30
        assert all(set(p) <= {"als", "itemknn", "title"} for p in proposers)
        assert any(p for p in proposers)
        als_best = model.members["als"].recommend(case.seeds, None, 1)[0][0]
        knn_best = model.members["itemknn"].recommend(case.seeds, None, 1)[0][0]
        found = dict(
            zip([als_best, knn_best], model.proposers(case.seeds, [als_best, knn_best], case.title), strict=True)
        )
        assert "als" in found[als_best] and "itemknn" in found[knn_best]
        reasons = model.explain(case.seeds, [als_best, -5], title=case.title)
        assert reasons[0].startswith("proposed by ") and "als" in reasons[0]
        assert reasons[1].startswith("a fill-in")

    def test_candidate_recall_is_the_share_of_withheld_tracks_proposed(self, model: HybridRecommender, cases):
        recall = model.candidate_recall(cases)
        assert set(recall["per_category"]) == {c.category for c in cases}
        direct = [np.mean([bool(p) for p in model.proposers(c.seeds, c.truth, c.title)]) for c in cases]
        assert recall["overall"] == pytest.approx(float(np.mean(direct)))
        assert 0.3 < recall["overall"] <= 1.0

    def test_feature_importances(self, model: HybridRecommender) -> None:
        table = model.feature_importances()
        assert list(table.columns) == ["feature", "gain"]
        assert sorted(table["feature"]) == sorted(feature_names(["als", "itemknn"]))
        assert table["gain"].is_monotonic_decreasing and table["gain"].iloc[0] > 0


def test_fit_reports_every_stage_and_can_be_stopped(demo_split: tuple[Corpus, Corpus], demo_cases: list) -> None:
    events: list[HybridProgress] = []

    def record(progress: HybridProgress) -> None:
        events.append(progress)

    make_model("hybrid", **FAST).fit(demo_split[0], callback=record)
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[0] >= 0 and fractions[-1] == pytest.approx(1.0)
    stages = [e.label.split(":")[0] for e in events]
    for stage in ("als (fit on the rest)", "itemknn (fit on the rest)", "cases", "ranker", "als (refit on all)"):
        assert stage in stages
    assert any(e.label.startswith("ranker: lambdarank round ") for e in events)
    assert any(e.label.startswith("ranker: rank_xendcg round ") for e in events)

    seen: list[str] = []

    def stop_in_the_ranker(progress: HybridProgress) -> bool:
        seen.append(progress.label)
        return not progress.label.startswith("ranker: lambdarank round 3/")

    model = make_model("hybrid", **FAST).fit(demo_split[0], callback=stop_in_the_ranker)
    assert model.report.stopped and model.report.best_iteration <= 3
    assert not any("refit" in label for label in seen)
    assert len(model.rankers) == 1 and model.ranker.num_trees() <= 3  # stopped before the second ranker

    early = make_model("hybrid", **FAST).fit(demo_split[0], callback=lambda progress: False)
    assert early.report.stopped and early.ranker is None and list(early.members) == ["als"]
    ids, _ = early.recommend(demo_cases[5].seeds, demo_cases[5].title, 20)
    assert len(np.unique(ids)) == 20  # members fused by reciprocal rank until a ranker exists


def test_settings_are_checked() -> None:
    defaults = HybridSettings()
    assert list(defaults.depths()) == [part.split(":")[0] for part in defaults.members.split(",")]
    assert HybridSettings(members="als:50, title").depths() == {"als": 50, "title": 200}
    for members, message in (
        ("als,nope", "unknown source 'nope'"),
        ("als:many", "K of als must be a whole number"),
        ("als:0", "K of als must be 1 or more"),
        ("title,popularity", "must name a model"),
    ):
        with pytest.raises(SettingError, match=message):
            make_model("hybrid", members=members)
    with pytest.raises(SettingError, match="holdout_share must be from 0.02 to 0.8"):
        make_model("hybrid", holdout_share=0.95)
    with pytest.raises(SettingError, match="unknown hybrid setting leaves"):
        make_model("hybrid", leaves=3)


def test_features_match_a_per_candidate_reference(demo_split: tuple[Corpus, Corpus], demo_cases: list) -> None:
    """The vectorised features against a plain loop over candidates, on a few demo cases."""
    train = demo_split[0]
    model = make_model("hybrid", **FAST)
    stats = CorpusStats.from_corpus(train)
    title_model = TitleModel().fit(train)
    order = np.argsort(-train.track_counts, kind="stable")
    batch = [c for c in demo_cases if len(c.seeds)][:6]
    seeds = [c.seeds for c in batch]
    knn = make_model("itemknn", neighbours=50).fit(train)
    scores = {"itemknn": knn._score_batch(seeds, [c.title for c in batch])}
    found = build_candidates(
        scores, seeds, [c.title for c in batch], seeds, {"itemknn": 40, "title": 20}, stats, title_model, order
    )
    names = feature_names(["itemknn"])
    column = {name: found.features[:, names.index(name)] for name in names}
    matrix = train.matrix().toarray()
    lengths = np.maximum(matrix.sum(axis=1), 1)
    for i, case in enumerate(batch):
        rows = found.of(i)
        distinct = np.unique(case.seeds)
        neighbour_weight = (matrix[:, distinct].sum(axis=1) / np.sqrt(len(distinct) * lengths)) ** 2
        neighbour = neighbour_weight @ matrix[:, found.track[rows]]
        assert column["neighbour_score"][rows] == pytest.approx(neighbour / train.n_playlists, rel=1e-4, abs=1e-9)
        assert column["neighbour_share"][rows] == pytest.approx(neighbour / neighbour.max(), rel=1e-4, abs=1e-7)
        assert not np.isin(found.track[rows], case.seeds).any()
        assert len(found.track[rows]) == len(np.unique(found.track[rows]))
        for row in range(rows.start, rows.stop):
            track = found.track[row]
            artist = train.track_artist[track]
            assert column["seed_artist_count"][row] == (train.track_artist[case.seeds] == artist).sum()
            cooc = sum(float(matrix[:, s] @ matrix[:, track]) for s in np.unique(case.seeds))
            assert column["cooc_share"][row] == pytest.approx(cooc / len(case.seeds) / train.n_playlists, rel=1e-5)
            assert column["n_seeds"][row] == len(case.seeds)
            assert column["has_title"][row] == float(bool(case.title))
    assert model.name == "hybrid" and set(CONTEXT_FEATURES) <= set(names)
    truth = labels(found, [c.truth for c in batch])
    expected = [float(t in batch[g].truth) for g, t in zip(found.group, found.track, strict=True)]
    assert truth.tolist() == expected


def test_evaluate_prints_candidate_recall(capsys: pytest.CaptureFixture, demo_dir: Path) -> None:
    code = main(["evaluate", "--train", str(demo_dir), "--model", "hybrid", "--max-cases", "40", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out)
    assert result["model"] == "hybrid" and 0 < result["candidate_recall"] <= 1
    assert set(result["candidate_recall_per_category"]) == set(result["per_category"])


def test_a_neural_member_is_saved_and_loaded(
    demo_split: tuple[Corpus, Corpus], demo_cases: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default members include the neural model: its network travels inside the hybrid's checkpoint."""
    import songrec.models as models

    original = models.make_model

    def small_networks(name: str, **params):  # a 1-epoch network, so the test takes seconds
        extra = {"epochs": 1, "members": 1, "embedding_dim": 16, "hidden_dim": 16} if name == "neural" else {}
        return original(name, **{**extra, **params})

    monkeypatch.setattr(models, "make_model", small_networks)
    model = original("hybrid", **{**FAST, "members": "als,neural:40,title:30"}).fit(demo_split[0])
    assert list(model.members) == ["als", "neural"]
    counts = demo_split[0].track_counts  # member_min_count (2): the members leave tracks seen once out
    assert (counts == 1).any()
    assert counts[model.members["als"].item_ids].min() == counts[model.members["neural"].vocab_ids].min() == 2
    path = tmp_path / "hybrid.safetensors"
    model.save(path)
    monkeypatch.setattr(models, "make_model", original)
    loaded = load_model(path)
    assert loaded.members["neural"].config()["embedding_dim"] == 16
    proposers = set()
    for case in demo_cases[:8]:
        ids, scores = model.recommend(case.seeds, case.title, 30)
        again, again_scores = loaded.recommend(case.seeds, case.title, 30)
        assert np.array_equal(ids, again)
        np.testing.assert_allclose(scores, again_scores, rtol=1e-5)
        proposers.update(name for names in loaded.proposers(case.seeds, ids, case.title) for name in names)
    assert "neural" in proposers


def test_the_xendcg_objective_trains_a_ranker_that_is_saved_and_loaded(
    demo_split: tuple[Corpus, Corpus], demo_cases: list, tmp_path: Path
) -> None:
    model = make_model("hybrid", **FAST, objective="rank_xendcg").fit(demo_split[0])
    assert "objective=rank_xendcg" in model.ranker.model_to_string()
    path = tmp_path / "xendcg.safetensors"
    model.save(path)
    loaded = load_model(path)
    assert loaded.config()["objective"] == "rank_xendcg"
    for case in demo_cases[:6]:
        ids, _ = model.recommend(case.seeds, case.title, 20)
        assert not set(ids) & set(case.seeds)
        assert np.array_equal(ids, loaded.recommend(case.seeds, case.title, 20)[0])
    with pytest.raises(SettingError, match="objective must be one of lambdarank, rank_xendcg"):
        make_model("hybrid", objective="regression")


def test_the_default_rankers_are_one_of_each_objective_and_their_standardised_scores_are_summed(
    demo_split: tuple[Corpus, Corpus], demo_cases: list
) -> None:
    model = make_model("hybrid", **FAST).fit(demo_split[0])
    texts = [r.model_to_string() for r in model.rankers]
    assert "objective=lambdarank" in texts[0] and "objective=rank_xendcg" in texts[1]
    assert len(model.report.best_iterations) == 2 and model.report.best_iterations[0] == model.report.best_iteration
    case = next(c for c in demo_cases if len(c.seeds) >= 5)
    found = model._candidates([case.seeds], [case.title], model.stats, model.title_model, model._popular_order)
    by_ranker = [r.predict(found.features) for r in model.rankers]
    expected = sum((s - s.mean()) / s.std() for s in by_ranker)
    np.testing.assert_allclose(model._rank(found), expected, rtol=1e-4, atol=1e-4)
    shares = model.feature_importances()["gain"]
    assert shares.sum() == pytest.approx(1.0)  # each ranker's gains as shares of its total, averaged


def test_standardised_scores_are_centred_and_scaled_per_playlist() -> None:
    from songrec.models.hybrid import _standardised

    scores = np.array([1.0, 3.0, 10.0, 10.0, 40.0])
    group = np.array([0, 0, 1, 1, 1])
    # playlist 0: mean 2, std 1; playlist 1: mean 20, std sqrt(200)
    expected = [-1.0, 1.0, -10 / np.sqrt(200), -10 / np.sqrt(200), 20 / np.sqrt(200)]
    np.testing.assert_allclose(_standardised(scores, group, 2), expected)
    assert np.array_equal(_standardised(np.array([5.0, 5.0]), np.array([0, 0]), 1), [0.0, 0.0])
