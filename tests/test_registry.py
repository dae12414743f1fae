"""Adding a model is one class and one registry line: a toy model gets the shared checks, the CLI and
the app's model lists without any other file knowing about it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from recommender_checks import RecommenderBaseTestMixin

from songrec.cli import main
from songrec.corpus import Corpus
from songrec.models import make_model, model_names, register_model
from songrec.models.base import FitCallback, Recommender, Scores
from songrec.settings import SettingError, Settings, setting


@dataclass(frozen=True)
class CooccurrenceSettings(Settings):
    owner = "toy"
    damping: float = setting(1.0, "added to each track's count before dividing by it", low=0.0, high=100.0)


class CooccurrenceRecommender(Recommender):
    """Tracks by how many playlists they share with the seeds, over their counts (a toy item-kNN)."""

    name = "toy"
    settings_classes = (CooccurrenceSettings,)

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.matrix = sp.csr_matrix((0, 0), dtype=np.float32)

    def _fit(self, corpus: Corpus, callback: FitCallback | None) -> None:
        self.matrix = corpus.matrix().astype(np.float32).tocsc()

    def _score(self, seeds: np.ndarray) -> Scores | None:
        playlists = np.asarray(self.matrix[:, seeds].sum(axis=1)).ravel()
        shared = self.matrix.T @ playlists
        return np.arange(len(shared)), (shared / (self.popularity + self.settings.damping)).astype(np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        csr = self.matrix.tocsr()
        return {"indptr": csr.indptr.astype(np.int64), "indices": csr.indices.astype(np.int32), "data": csr.data}

    def _load_state(self, arrays: dict[str, np.ndarray], strings: dict[str, list[str]]) -> None:
        rows = len(arrays["indptr"]) - 1
        self.matrix = sp.csr_matrix(
            (arrays["data"], arrays["indices"], arrays["indptr"]), shape=(rows, self.n_tracks)
        ).tocsc()


register_model("toy", CooccurrenceRecommender, "a toy co-occurrence model registered by a test")


class TestToy(RecommenderBaseTestMixin):
    def make_model(self) -> Recommender:
        return make_model("toy", damping=2.0)


def test_the_toy_is_listed_and_its_settings_are_checked() -> None:
    assert "toy" in model_names()
    with pytest.raises(SettingError, match="toy setting damping must be from 0 to 100, not -1.0"):
        make_model("toy", damping=-1.0)


def test_evaluate_runs_the_toy(capsys: pytest.CaptureFixture, demo_dir: Path) -> None:
    code = main(
        [
            "evaluate",
            "--train",
            str(demo_dir),
            "--model",
            "toy,popularity",
            "--param",
            "toy.damping=3",
            "--max-cases",
            "40",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert set(rows) == {"toy", "popularity"}
    assert float(rows["toy"][2]) > float(rows["popularity"][2])  # R-precision: co-occurrence beats popularity


def test_the_app_lists_the_toy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from streamlit.testing.v1 import AppTest

    from songrec.synthetic import write_demo

    write_demo(tmp_path / "demo", 200, seed=0)
    monkeypatch.setenv("SONGREC_DEMO_DIR", str(tmp_path / "demo"))
    app = AppTest.from_file(str(Path(__file__).parents[1] / "app.py"), default_timeout=120)
    app.run()
    app.switch_page("app_pages/evaluation.py").run()
    assert not app.exception
    (models,) = [m for m in app.multiselect if m.label == "Models"]
    assert "toy" in models.options
