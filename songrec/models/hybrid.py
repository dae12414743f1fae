"""The hybrid: candidates from several models, re-ranked by LightGBM LambdaRank (the RecSys Challenge 2018 recipe).

Stage 1 takes the union of each member's top K (ALS, item-kNN, EASE, neural, the title model,
popularity); stage 2 orders it with a gradient-boosted ranker over features of every (playlist,
candidate) pair (`songrec.ranking_features`). The ranker learns from challenge-like cases cut from
training playlists the members never saw: a share of the training playlists is held out, the
members are fitted on the rest, and the ranker is trained (with early stopping on a part of those
cases) on what the members propose for the held-out ones. The evaluated cases are never touched.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from songrec.checkpoint import CheckpointError
from songrec.corpus import Corpus
from songrec.models.base import FitCallback, Recommender, Scores, frequent_tracks
from songrec.models.title import TitleModel
from songrec.protocol import Case, make_cases
from songrec.ranking_features import (
    SOURCE_ONLY,
    Candidates,
    CorpusStats,
    build_candidates,
    candidate_recall,
    feature_names,
    labels,
)
from songrec.settings import SettingError, Settings, setting

MODEL_MEMBERS = ("als", "itemknn", "ease", "neural")
"""Members fitted as songrec models; `title` and `popularity` are sources the hybrid has anyway."""
MIN_COUNT_SETTING = {"als": "min_count", "neural": "min_track_count"}
"""The members whose vocabulary `member_min_count` sets, and the name of that setting in each."""
FUSION_OFFSET = 60.0
"""Reciprocal-rank fusion's usual constant (Cormack et al. 2009): the order used when no ranker was
trained (a fit stopped before it, or too few cases to learn from)."""
RANKER_PIECE = 4096
"""Characters of LightGBM's (ASCII) model text per string-table entry (a checkpoint's per-string limit)."""
RANKING_OBJECTIVES = ("lambdarank", "rank_xendcg", "lambdarank+rank_xendcg")
"""One ranker of either LightGBM objective, or one of each, whose per-playlist standardised scores are summed."""
BATCH = 256
"""Playlists described at once: large enough for vectorised features, small enough for memory."""


@dataclass(frozen=True)
class HybridSettings(Settings):
    """The hybrid's settings; the defaults were measured on random splits of the MPD sample (README)."""

    owner: ClassVar[str] = "hybrid"

    members: str = setting(
        "als:500,itemknn:500,neural,title",
        "candidate sources, comma-separated, each `name` or `name:K` (als, itemknn, ease, neural, title, popularity)",
    )
    member_min_count: int = setting(
        2,
        "the ALS and neural members leave out tracks in fewer training playlists (their own default, 1, "
        "scored the same on the tuning splits for 1.5x the fit time: the ranker gets tracks seen once from item-kNN)",
        low=1,
        high=1_000_000,
    )
    candidates: int = setting(200, "candidates from each source whose K is not given in members", low=1, high=5000)
    holdout_share: float = setting(
        0.2, "share of training playlists held out to train the ranker on", low=0.02, high=0.8, step=0.05
    )
    cases_per_playlist: int = setting(2, "challenge cases cut from each held-out playlist", low=1, high=10)
    refit: bool = setting(True, "refit the members on all training playlists once the ranker is trained")
    valid_share: float = setting(0.2, "share of the ranker's cases kept for early stopping", low=0.05, high=0.5)
    negative_share: float = setting(
        1.0,
        "share of the wrong candidates of a training case the ranker learns from (all hits are kept)",
        low=0.01,
        high=1.0,
        step=0.05,
    )
    objective: str = setting(
        "lambdarank+rank_xendcg",
        "the rankers' LightGBM objectives: lambdarank, rank_xendcg (a cross-entropy over each playlist's "
        "candidates), or one ranker of each on the same cases, their scores standardised per playlist and "
        "summed (+0.0029 R-precision and +0.0030 NDCG over lambdarank alone on four random splits, better on "
        "every one, for about 20% more fit)",
        choices=RANKING_OBJECTIVES,
    )
    rounds: int = setting(500, "most boosting rounds of the ranker", low=1, high=10_000)
    early_stopping: int = setting(30, "stop when validation NDCG has not improved for this many rounds", low=1)
    learning_rate: float = setting(0.05, "the ranker's learning rate", low=1e-4, high=1.0, log=True)
    num_leaves: int = setting(31, "leaves per tree", low=2, high=1024)
    min_data_in_leaf: int = setting(50, "fewest candidates in a leaf", low=1, high=100_000)
    truncation: int = setting(
        100,
        "ranks LambdaRank optimises (lambdarank_truncation_level) and early stopping's NDCG reads",
        low=1,
        high=5000,
    )
    threads: int = setting(0, "LightGBM threads (0: all cores)", low=0, high=256)
    seed: int = setting(0, "seeds the held-out share, the cases and the ranker", low=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.depths()

    def objectives(self) -> list[str]:
        """The LightGBM objective of each ranker, in training order."""
        return self.objective.split("+")

    def depths(self) -> dict[str, int]:
        """Each source and its K, in the order given."""
        found: dict[str, int] = {}
        for part in self.members.split(","):
            name, _, depth = part.strip().partition(":")
            name = name.strip()
            if not name:
                continue
            if name not in MODEL_MEMBERS + SOURCE_ONLY:
                known = ", ".join(MODEL_MEMBERS + SOURCE_ONLY)
                raise SettingError(f"hybrid setting members: unknown source {name!r}; choose from {known}")
            try:
                found[name] = int(depth) if depth.strip() else self.candidates
            except ValueError:
                message = f"hybrid setting members: K of {name} must be a whole number, not {depth!r}"
                raise SettingError(message) from None
            if found[name] < 1:
                raise SettingError(f"hybrid setting members: K of {name} must be 1 or more, not {found[name]}")
        if not any(name in MODEL_MEMBERS for name in found):
            models = ", ".join(MODEL_MEMBERS)
            raise SettingError(f"hybrid setting members must name a model ({models}), not {self.members!r}")
        return found


@dataclass(frozen=True)
class HybridProgress:
    """Where a hybrid fit stands: stage `index` of `stages` (members, cases, ranker rounds), and within it."""

    stage: str
    index: int
    stages: int
    within: float
    detail: str

    @property
    def fraction(self) -> float:
        return min(1.0, (self.index + min(max(self.within, 0.0), 1.0)) / self.stages)

    @property
    def label(self) -> str:
        return f"{self.stage}: {self.detail}" if self.detail else self.stage

    @property
    def done(self) -> int:
        """Thousandths of the whole fit (for progress bars driven by done/total)."""
        return round(1000 * self.fraction)

    total: ClassVar[int] = 1000


class _Reporter:
    """Turns each stage's progress into HybridProgress; remembers a stop request (callback returned False)."""

    def __init__(self, callback: FitCallback | None, stages: int) -> None:
        self.callback, self.stages, self.index, self.stopped = callback, stages, 0, False

    def report(self, stage: str, within: float, detail: str = "") -> bool | None:
        if self.callback is None:
            return None
        answer = self.callback(HybridProgress(stage, self.index, self.stages, within, detail))
        if answer is False:
            self.stopped = True
        return answer

    def member_callback(self, stage: str) -> FitCallback:
        def forward(progress: Any) -> bool | None:
            return self.report(stage, progress.fraction, progress.label)

        return forward

    def next(self) -> None:
        self.index = min(self.index + 1, self.stages - 1)


@dataclass
class FitReport:
    """What the fit did: who learned from which playlists, and how the ranker trained."""

    member_pids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """Playlists the members were fitted on before the ranker was trained."""
    ranker_pids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """Held-out training playlists whose cases trained (and early-stopped) the ranker."""
    cases: int = 0
    rows: int = 0
    candidate_recall: float = float("nan")
    best_iterations: list[int] = field(default_factory=list)
    """Rounds kept by each ranker, in training order."""
    valid_ndcg: float = float("nan")
    """The first ranker's best validation NDCG."""
    stopped: bool = False

    @property
    def best_iteration(self) -> int:
        """Rounds kept by the first ranker (0 before one is trained)."""
        return self.best_iterations[0] if self.best_iterations else 0


class HybridRecommender(Recommender):
    """Union of the members' top K, ordered by LightGBM rankers (LambdaRank and XE-NDCG by default)."""

    name = "hybrid"
    uses_titles = True
    settings_classes: ClassVar[tuple[type[Settings], ...]] = (HybridSettings,)
    settings: HybridSettings

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.members: dict[str, Recommender] = {}
        self.stats: CorpusStats | None = None
        self.rankers: list = []
        self.report = FitReport()

    @property
    def depths(self) -> dict[str, int]:
        return self.settings.depths()

    @property
    def features(self) -> list[str]:
        return feature_names(list(self.members))

    # --- fitting ------------------------------------------------------------------------------------------

    def _fit(self, corpus: Corpus, callback: FitCallback | None) -> None:
        s = self.settings
        names = [name for name in self.depths if name in MODEL_MEMBERS]
        stages = len(names) * (2 if s.refit else 1) + 2
        reporter = _Reporter(callback, stages)
        self.report = FitReport()
        self.rankers = []
        part, held = corpus.split(s.holdout_share, seed=s.seed)
        self.report.member_pids = part.playlists["pid"].to_numpy(np.int64)
        self.members = self._fit_members(names, part, reporter, "fit on the rest")
        if not reporter.stopped:
            self._train_ranker(part, held, reporter)
        if s.refit and not reporter.stopped:
            self.members = self._fit_members(names, corpus, reporter, "refit on all")
        self.stats = CorpusStats.from_corpus(corpus)
        self.report.stopped = reporter.stopped

    def _fit_members(self, names: list[str], corpus: Corpus, reporter: _Reporter, why: str) -> dict[str, Recommender]:
        from songrec.models import make_model

        fitted = {}
        for name in names:
            stage = f"{name} ({why})"
            reporter.report(stage, 0.0)
            params = {MIN_COUNT_SETTING[name]: self.settings.member_min_count} if name in MIN_COUNT_SETTING else {}
            fitted[name] = make_model(name, **params).fit(corpus, callback=reporter.member_callback(stage))
            reporter.next()
            if reporter.stopped:
                break
        return fitted

    def _train_ranker(self, part: Corpus, held: Corpus, reporter: _Reporter) -> None:
        """Cases from the held-out playlists, described with members, stats and title model of the rest."""
        s = self.settings
        cases = [c for r in range(s.cases_per_playlist) for c in make_cases(held, seed=s.seed + r)]
        self.report.ranker_pids = np.unique(np.asarray([c.pid for c in cases], dtype=np.int64))
        stats = CorpusStats.from_corpus(part)
        title_model = TitleModel().fit(part)
        popular_order = frequent_tracks(part)
        blocks, recalls = [], []
        for start in range(0, len(cases), BATCH):
            batch = cases[start : start + BATCH]
            found = self._candidates(
                [c.seeds for c in batch], [c.title for c in batch], stats, title_model, popular_order
            )
            truths = [c.truth for c in batch]
            blocks.append((found, labels(found, truths)))
            recalls.append(candidate_recall(found, truths))
            reporter.report("cases", (start + len(batch)) / len(cases), f"{start + len(batch):,}/{len(cases):,} cases")
            if reporter.stopped:
                return
        reporter.next()
        self.report.cases = len(cases)
        self.report.candidate_recall = float(np.concatenate(recalls).mean()) if recalls else float("nan")
        self.rankers = self._boost(blocks, reporter)

    @property
    def ranker(self):
        """The first ranker (None before one is trained): what a single-objective hybrid orders by."""
        return self.rankers[0] if self.rankers else None

    def _boost(self, blocks: list[tuple[Candidates, np.ndarray]], reporter: _Reporter) -> list:
        """One ranker per objective, trained and early-stopped on the same cases."""
        import lightgbm

        s = self.settings
        features = np.concatenate([found.features for found, _ in blocks])
        target = np.concatenate([y for _, y in blocks])
        sizes = np.concatenate([found.sizes for found, _ in blocks])
        group_of_row = np.repeat(np.arange(len(sizes)), sizes)
        positives = np.bincount(group_of_row, weights=target, minlength=len(sizes))
        useful = np.flatnonzero((positives > 0) & (sizes > 1))  # a group without a hit teaches nothing
        self.report.rows = int(sizes[useful].sum())
        if len(useful) < 4:
            return []
        rng = np.random.default_rng(s.seed)
        shuffled = rng.permutation(useful)
        n_valid = max(1, int(round(len(useful) * s.valid_share)))
        valid_groups, train_groups = np.sort(shuffled[:n_valid]), np.sort(shuffled[n_valid:])

        kept = (target > 0) | (rng.random(len(target)) < s.negative_share)

        def dataset(groups: np.ndarray, reference=None):
            rows = np.isin(group_of_row, groups) & (kept if reference is None else True)  # validation: every row
            sizes_kept = np.bincount(group_of_row[rows], minlength=len(sizes))[groups]
            return lightgbm.Dataset(
                features[rows],
                target[rows],
                group=sizes_kept,
                feature_name=self.features,
                reference=reference,
                free_raw_data=True,
            )

        train_set = dataset(train_groups)
        valid_set = dataset(valid_groups, train_set)
        objectives = s.objectives()
        rankers = []
        for number, objective in enumerate(objectives):
            rankers.append(self._train_one(objective, train_set, valid_set, reporter, number, len(objectives)))
            if reporter.stopped:
                break
        reporter.next()
        return rankers

    def _train_one(self, objective: str, train_set, valid_set, reporter: _Reporter, number: int, count: int):
        """Ranker `number` of `count`, early-stopped on validation NDCG; its best rounds re-read from its text."""
        import lightgbm

        s = self.settings
        params = {
            "objective": objective,
            "metric": "ndcg",
            "eval_at": [s.truncation],
            "lambdarank_truncation_level": s.truncation,
            "learning_rate": s.learning_rate,
            "num_leaves": s.num_leaves,
            "min_data_in_leaf": s.min_data_in_leaf,
            "num_threads": s.threads,
            "seed": s.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }

        def on_round(env) -> None:
            done = env.iteration - env.begin_iteration + 1
            total = env.end_iteration - env.begin_iteration
            label = f"{objective} round {done}/{total}" if count > 1 else f"round {done}/{total}"
            if reporter.report("ranker", (number + done / total) / count, label) is False:
                raise lightgbm.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

        booster = lightgbm.train(
            params,
            train_set,
            num_boost_round=s.rounds,
            valid_sets=[valid_set],
            valid_names=["valid"],
            callbacks=[on_round, lightgbm.early_stopping(s.early_stopping, verbose=False)],
        )
        best_iteration = int(booster.best_iteration or booster.current_iteration())
        self.report.best_iterations.append(best_iteration)
        if number == 0:
            best = booster.best_score.get("valid", {})
            self.report.valid_ndcg = float(next(iter(best.values()), float("nan")))
        # the ranker in use is the one a checkpoint holds: the best rounds, re-read from LightGBM's text
        return lightgbm.Booster(model_str=booster.model_to_string(num_iteration=best_iteration))

    # --- scoring ------------------------------------------------------------------------------------------

    def _candidates(
        self,
        seed_lists: Sequence[np.ndarray],
        titles: Sequence[str | None],
        stats: CorpusStats,
        title_model: TitleModel,
        popular_order: np.ndarray,
        limit: int | None = None,
    ) -> Candidates:
        depths = self.depths
        deepest = max(depths.values())
        member_scores = {}
        # one thread in every pool (BLAS, and the OpenMP pool torch's CPU kernels use): ALS solves a small
        # system per playlist, which threads only slow down (4 ms against 0.2 ms for 128 factors on 2
        # cores, 30 ms when the cores are busy), and two torch threads for the neural member's product
        # doubled the slowest answers (p99 59 against 35 ms at the sample size)
        with _thread_pools(torch_loaded="torch" in sys.modules).limit(limits=1):
            for name, member in self.members.items():
                rows = [i for i, seeds in enumerate(seed_lists) if len(seeds) or (member.uses_titles and titles[i])]
                scored: list[Scores | None] = [None] * len(seed_lists)
                if rows:
                    most = max(len(seed_lists[i]) for i in rows) + max(deepest, limit or 0)
                    answers = member._score_batch([seed_lists[i] for i in rows], [titles[i] for i in rows], most)
                    for i, answer in zip(rows, answers, strict=True):
                        scored[i] = answer
                member_scores[name] = scored
        excludes = [np.asarray(seeds, dtype=np.int64) for seeds in seed_lists]
        return build_candidates(member_scores, seed_lists, titles, excludes, depths, stats, title_model, popular_order)

    def _score(self, seeds: np.ndarray) -> Scores | None:
        return self._score_batch([seeds], [None])[0]

    def _score_batch(
        self, seed_lists: Sequence[np.ndarray], titles: Sequence[str | None], limit: int | None = None
    ) -> list[Scores | None]:
        results: list[Scores | None] = []
        for start in range(0, len(seed_lists), BATCH):
            seeds, names = seed_lists[start : start + BATCH], titles[start : start + BATCH]
            found = self._candidates(seeds, names, self.stats, self.title_model, self._popular_order, limit)
            values = self._rank(found)
            for i in range(len(seeds)):
                rows = found.of(i)
                results.append((found.track[rows], values[rows]) if rows.stop > rows.start else None)
        return results

    def _rank(self, found: Candidates) -> np.ndarray:
        if len(found.track) == 0:
            return np.zeros(0, dtype=np.float32)
        if not self.rankers:
            ranks = np.where(found.proposed, self._source_ranks(found), np.inf)
            return (1.0 / (FUSION_OFFSET + ranks)).sum(axis=1).astype(np.float32)
        # standardised per playlist, so rankers of different objectives add up (one ranker: the same order)
        total = np.zeros(len(found.track), dtype=np.float64)
        for ranker in self.rankers:
            total += _standardised(ranker.predict(found.features, num_threads=1), found.group, len(found.sizes))
        return total.astype(np.float32)

    def _source_ranks(self, found: Candidates) -> np.ndarray:
        """Each candidate's rank in each source's top K (for fusion when there is no ranker)."""
        names = self.features
        out = np.full(found.proposed.shape, np.inf, dtype=np.float64)
        for j, source in enumerate(found.sources):
            column = f"{source}_rank"
            if column in names:
                out[:, j] = found.features[:, names.index(column)]
        return np.nan_to_num(out, nan=np.inf)

    # --- what the app shows -------------------------------------------------------------------------------

    def candidate_recall(self, cases: Sequence[Case]) -> dict[str, Any]:
        """Share of each case's withheld tracks among its candidates (mean over cases, and per category):
        what stage 2 can reach at most."""
        self.require_fitted("measuring candidate recall")
        recalls = []
        for start in range(0, len(cases), BATCH):
            batch = cases[start : start + BATCH]
            seeds = [self._known(c.seeds) for c in batch]
            found = self._candidates(seeds, [c.title for c in batch], self.stats, self.title_model, self._popular_order)
            recalls.append(candidate_recall(found, [c.truth for c in batch]))
        values = np.concatenate(recalls) if recalls else np.zeros(0)
        categories = np.asarray([c.category for c in cases])
        per_category = {str(name): float(values[categories == name].mean()) for name in dict.fromkeys(categories)}
        return {"overall": float(values.mean()) if len(values) else float("nan"), "per_category": per_category}

    def proposers(
        self, seeds: Sequence[int] | np.ndarray, track_ids: Sequence[int] | np.ndarray, title: str | None = None
    ) -> list[list[str]]:
        """For each track, the sources (members, title, popularity) that put it in their top K for this playlist."""
        self.require_fitted("naming proposers")
        found = self._candidates([self._known(seeds)], [title], self.stats, self.title_model, self._popular_order)
        position = pd.Index(found.track)
        rows = position.get_indexer(np.asarray(track_ids, dtype=np.int64))
        return [
            [source for j, source in enumerate(found.sources) if found.proposed[row, j]] if row >= 0 else []
            for row in rows
        ]

    def explain(
        self,
        seeds: Sequence[int] | np.ndarray,
        track_ids: Sequence[int] | np.ndarray,
        corpus: Corpus | None = None,
        title: str | None = None,
    ) -> list[str]:
        """One reason per track: the sources that proposed it ("proposed by als, itemknn"), then the
        seeds it shares most playlists with when a corpus is at hand (see `Recommender.explain`)."""
        proposers = self.proposers(seeds, track_ids, title)
        try:
            shared = super().explain(seeds, track_ids, corpus)
        except ValueError:  # loaded from a checkpoint and no corpus given: the proposers alone
            shared = [""] * len(proposers)
        reasons = []
        for names, detail in zip(proposers, shared, strict=True):
            head = f"proposed by {', '.join(names)}" if names else "a fill-in (no member proposed it)"
            reasons.append(f"{head}; {detail}" if detail else head)
        return reasons

    def feature_importances(self) -> pd.DataFrame:
        """The rankers' gain per feature, largest first (empty without a ranker): each ranker's gains as
        shares of its total, averaged over the rankers (their objectives' gains differ in scale)."""
        if not self.rankers:
            return pd.DataFrame({"feature": pd.Series(dtype=str), "gain": pd.Series(dtype=float)})
        shares = [r.feature_importance(importance_type="gain").astype(float) for r in self.rankers]
        gains = np.mean([share / max(share.sum(), 1e-12) for share in shares], axis=0)
        table = pd.DataFrame({"feature": self.rankers[0].feature_name(), "gain": gains})
        return table.sort_values("gain", ascending=False, kind="stable").reset_index(drop=True)

    # --- checkpoint -----------------------------------------------------------------------------------------

    def _state(self) -> dict[str, np.ndarray]:
        arrays = {f"stats.{k}": v for k, v in self.stats.state().items()}
        for name, member in self.members.items():
            arrays.update({f"member.{name}.{k}": v for k, v in member._state().items()})
        return arrays

    def _strings(self) -> dict[str, list[str]]:
        strings = {
            "members": list(self.members),
            "member_configs": [json.dumps(m.config()) for m in self.members.values()],
            "features": self.features,
        }
        for name, member in self.members.items():
            strings.update({f"member.{name}.{k}": v for k, v in member._strings().items()})
        for number, ranker in enumerate(self.rankers):
            text = ranker.model_to_string()
            # a string table holds at most MAX_STRING_BYTES per entry: LightGBM's text in pieces (ASCII)
            strings[_ranker_key(number)] = [text[i : i + RANKER_PIECE] for i in range(0, len(text), RANKER_PIECE)]
        return strings

    def _load_state(self, arrays: dict[str, np.ndarray], strings: dict[str, list[str]]) -> None:
        from songrec.models import make_model

        names, configs = strings["members"], strings["member_configs"]
        unknown = [n for n in names if n not in MODEL_MEMBERS]
        if unknown or len(configs) != len(names) or len(set(names)) != len(names):
            raise CheckpointError(f"hybrid checkpoint: members {names} are not distinct models of {MODEL_MEMBERS}")
        self.stats = CorpusStats.from_state(
            {k.removeprefix("stats."): v for k, v in arrays.items() if k.startswith("stats.")}, self.n_tracks
        )
        self.members = {}
        for name, config in zip(names, configs, strict=True):
            member = make_model(name, **json.loads(config))
            member.track_uris, member.popularity = self.track_uris, self.popularity
            member.title_model = self.title_model  # shared: members are only asked for scores
            prefix = f"member.{name}."
            member._load_state(
                {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)},
                {k.removeprefix(prefix): v for k, v in strings.items() if k.startswith(prefix)},
            )
            member.fitted = True
            self.members[name] = member
        if strings["features"] != self.features:
            raise CheckpointError(f"hybrid checkpoint's features {strings['features']} are not {self.features}")
        self.rankers = []
        while _ranker_key(len(self.rankers)) in strings:
            self.rankers.append(_read_ranker(strings[_ranker_key(len(self.rankers))], self.features))


def _ranker_key(number: int) -> str:
    """The string-table key of ranker `number`: "ranker" for the first (as single-ranker checkpoints say)."""
    return "ranker" if number == 0 else f"ranker.{number}"


def _standardised(scores: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Scores less their playlist's mean, over their playlist's standard deviation (vectorised by group)."""
    scores = scores.astype(np.float64)
    counts = np.maximum(np.bincount(group, minlength=n_groups), 1)
    mean = np.bincount(group, weights=scores, minlength=n_groups) / counts
    centred = scores - mean[group]
    spread = np.sqrt(np.bincount(group, weights=centred * centred, minlength=n_groups) / counts)
    return centred / np.maximum(spread[group], 1e-12)


def _read_ranker(text: list[str], features: list[str]):
    """The LightGBM ranker from its own text format (saved in pieces); anything else is refused."""
    import lightgbm

    joined = "".join(text)
    if not joined.startswith("tree\n") or not joined.isascii():
        raise CheckpointError("hybrid checkpoint's ranker is not a LightGBM model string")
    try:
        booster = lightgbm.Booster(model_str=joined)
    except lightgbm.basic.LightGBMError as exc:
        raise CheckpointError(f"hybrid checkpoint's ranker is not a readable LightGBM model ({exc})") from None
    if booster.feature_name() != features:
        raise CheckpointError(f"hybrid checkpoint's ranker reads features {booster.feature_name()}, not {features}")
    return booster


@functools.cache
def _thread_pools(torch_loaded: bool):
    """One controller of the loaded thread pools (threadpool_limits inspects every loaded library, 10 ms
    a call). `torch_loaded` is the cache key: a controller made before torch was imported does not
    see torch's OpenMP pool, so one is made again once it is."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()
