"""Shared fixtures: generated demo data (fast, always there) and the real MPD excerpts (optional)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from songrec.corpus import Corpus
from songrec.ingest import load_corpus
from songrec.protocol import make_cases
from songrec.synthetic import GENRES, TRACKS_PER_PLAYLIST, make_catalogue, write_demo

SHARED_DATA = (Path(__file__).parents[1] / "../shared/data").resolve()
"""Real MPD excerpts (mpd-sample/, mpd-full-format/): on the developers' machines only, never in the repo."""

DEMO_PLAYLISTS = 600
DEMO_SEED = 0


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present: real MPD excerpts are only on the developers' machines")
    return SHARED_DATA


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of generated slices (600 playlists, seed 0): treat it as read-only."""
    folder = tmp_path_factory.mktemp("demo")
    write_demo(folder, DEMO_PLAYLISTS, seed=DEMO_SEED)
    return folder


@pytest.fixture(scope="session")
def demo_corpus(demo_dir: Path) -> Corpus:
    corpus, report = load_corpus([demo_dir])
    assert not report.errors and not report.warnings, (report.errors, report.warnings)
    return corpus


@pytest.fixture(scope="session")
def demo_split(demo_corpus: Corpus) -> tuple[Corpus, Corpus]:
    """(train, test): 80/20 random split of the demo playlists, sharing track ids."""
    return demo_corpus.split(0.2, seed=0)


@pytest.fixture(scope="session")
def demo_cases(demo_split: tuple[Corpus, Corpus]) -> list:
    """Challenge cases from the held-out demo playlists."""
    return make_cases(demo_split[1], seed=0)


@pytest.fixture(scope="session")
def trained_neural(demo_split: tuple[Corpus, Corpus]):
    """A small neural model (factories.FAST_NEURAL) fitted once on the demo training playlists."""
    from factories import FAST_NEURAL

    from songrec.models.neural import NeuralRecommender

    return NeuralRecommender(**FAST_NEURAL).fit(demo_split[0])


@pytest.fixture(scope="session")
def demo_track_genres(demo_corpus: Corpus) -> np.ndarray:
    """The genre name each demo track was generated for, by corpus track id."""
    catalogue = make_catalogue(max(200, round(TRACKS_PER_PLAYLIST * DEMO_PLAYLISTS)), DEMO_SEED)
    genre_of_uri = dict(zip(catalogue.uris, (GENRES[g].name for g in catalogue.genre.tolist()), strict=True))
    missing = [u for u in demo_corpus.tracks["uri"] if u not in genre_of_uri]
    assert not missing, "the demo catalogue no longer matches write_demo's: update this fixture"
    return np.array([genre_of_uri[u] for u in demo_corpus.tracks["uri"]], dtype=object)


@pytest.fixture(scope="session")
def app_demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app tests' demo data: 400 generated playlists (seed 0), one folder for every app test module."""
    folder = tmp_path_factory.mktemp("app-demo")
    write_demo(folder, 400, seed=0)
    return folder


@pytest.fixture
def app(app_demo_folder: Path, monkeypatch: pytest.MonkeyPatch):
    """The real app.py in AppTest on the app demo data, after its first run."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SONGREC_DEMO_DIR", str(app_demo_folder))
    monkeypatch.delenv("SONGREC_DATA_DIR", raising=False)
    at = AppTest.from_file(str(Path(__file__).parents[1] / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception
    return at
