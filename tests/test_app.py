"""The Streamlit app through streamlit.testing (AppTest): every page, uploads, training, recommendations.

Runs the real app.py in-process on small generated data (SONGREC_DEMO_DIR points at a temporary
folder), so no test needs a browser or a server.
"""

from __future__ import annotations

import gzip
import json
import pickle
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from songrec.synthetic import write_demo

APP = str(Path(__file__).parents[1] / "app.py")
PAGES = {
    "dataset": "Dataset",
    "train": "Train",
    "recommend": "Recommend",
    "genres": "Genre validation",
    "embeddings": "Embeddings",
    "evaluation": "Evaluation",
}


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("app-demo")
    write_demo(folder, 400, seed=0)
    return folder


@pytest.fixture
def app(demo_folder: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("SONGREC_DEMO_DIR", str(demo_folder))
    monkeypatch.delenv("SONGREC_DATA_DIR", raising=False)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception
    return at


def goto(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == PAGES[page]
    return at


def button(at: AppTest, label: str):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r}; have {[b.label for b in at.button]}"
    return matches[0]


def number(at: AppTest, label: str):
    return next(n for n in at.number_input if n.label == label)


def sidebar_text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.sidebar.markdown)


def train_neural(at: AppTest, epochs: int = 1, timeout: float = 90) -> None:
    goto(at, "train")
    number(at, "Epochs").set_value(epochs)
    number(at, "Embedding size").set_value(16)
    number(at, "Hidden size").set_value(32)
    number(at, "Batch size").set_value(64)
    next(s for s in at.selectbox if s.label == "Device").set_value("cpu")  # small and the same everywhere
    at.button(key="FormSubmitter:train_form-Train neural model").click().run()
    assert not at.exception
    job = at.session_state["train_job"]
    deadline = time.monotonic() + timeout
    while job.running and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.status == "done", job.error
    at.run()
    assert not at.exception


def test_every_page_renders(app: AppTest) -> None:
    assert "Demo data" in sidebar_text(app) and "400 playlists" in sidebar_text(app)
    for page in PAGES:
        goto(app, page)
        assert "400 playlists" in sidebar_text(app)  # the router's sidebar is on every page
    assert not app.error


def test_dataset_page_shows_counts_charts_and_browser(app: AppTest) -> None:
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Playlists"] == "400"
    assert len(app.get("vega_lite_chart")) >= 5  # lengths, followers, top tracks/artists/names
    app.text_input(key="browse_query").set_value("christmas").run()
    assert not app.exception
    names = app.dataframe[-1].value["name"]
    assert len(names) and names.str.lower().str.contains("christmas").all()


def test_upload_keeps_good_files_and_names_bad_ones(app: AppTest, demo_folder: Path) -> None:
    goto(app, "train")
    button(app, "Fit popularity").click().run()  # fitted on the demo data, used on the upload below
    goto(app, "dataset")
    good = (demo_folder / "mpd.slice.0-999.json").read_bytes()
    data = json.loads(good)
    data["playlists"] = data["playlists"][:50]
    small = json.dumps(data).encode()
    data["playlists"][0]["tracks"][0].pop("track_uri")
    bad = json.dumps(data).encode()
    app.segmented_control(key="dataset_source").set_value("Upload slices").run()
    app.file_uploader(key="slice_upload").set_value([
        ("mpd.slice.0-999.json.gz", gzip.compress(small), "application/gzip"),
        ("broken.json", bad, "application/json"),
        ("truncated.json", small[:500], "application/json"),
    ]).run()
    button(app, "Load uploaded files").click().run()
    assert not app.exception
    assert "2 files could not be read (1 loaded)" in app.error[0].value
    problems = app.dataframe[0].value
    assert problems["file"].tolist() == ["broken.json", "truncated.json"]
    assert problems["field"].iat[0] == "playlists[0].tracks[0].track_uri"
    assert "missing" in problems["problem"].iat[0] and "truncated" in problems["problem"].iat[1]
    assert "Uploaded (1 file)" in sidebar_text(app) and "50 playlists" in sidebar_text(app)
    assert app.session_state["dataset"].kind == "upload"
    assert "popularity · other data" in sidebar_text(app)
    goto(app, "recommend")  # the demo-fitted model speaks the upload's track ids (matched by URI)
    assert not app.error and len(app.dataframe[-1].value) == 20


def test_server_folder_with_files_to_load(app: AppTest, demo_folder: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    write_demo(tmp_path / "mpd", 2500, seed=5)  # three slice files
    monkeypatch.setenv("SONGREC_DATA_DIR", str(tmp_path))
    app.run()
    app.segmented_control(key="dataset_source").set_value("Server folder").run()
    assert app.selectbox[0].options == ["mpd"]
    number(app, "Files to load").set_value(2)
    button(app, "Load folder").click().run()
    assert not app.exception
    assert "2,000 playlists" in sidebar_text(app) and "mpd (2 files)" in sidebar_text(app)


def test_train_recommend_genres_embeddings_with_the_neural_model(app: AppTest) -> None:
    train_neural(app, epochs=1)
    assert "Trained 1 epoch" in app.success[0].value
    assert "neural · cpu · 1 epoch" in sidebar_text(app)
    assert app.get("download_button")

    goto(app, "recommend")
    assert app.selectbox[0].value == "neural"
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Seeds given"] == "10"
    recommendations = app.dataframe[-1].value
    assert len(recommendations) == 20 and set(recommendations["hit"]) <= {"✓", ""}
    assert (recommendations["hit"] == "✓").sum() == int(metrics["Found in top 20"])
    playlist = app.dataframe[0].value
    assert playlist["role"].tolist()[:11] == ["seed"] * 10 + ["held out"]

    app.segmented_control(key="recommend_mode").set_value("Build your own").run()
    app.text_input(key="custom_title").set_value("country").run()
    assert not app.exception and len(app.dataframe[-1].value) == 20  # title only
    app.text_input(key="track_query").set_value("whiskey").run()
    app.multiselect[0].set_value(app.multiselect[0].options[:2]).run()
    assert not app.exception
    assert len(app.dataframe[0].value) == 2  # the playlist built

    goto(app, "genres")
    summary = app.dataframe[0].value
    assert set(summary["model"]) == {"neural", "popularity"}
    assert set(summary["genre"]) == {"country", "hip-hop", "christmas"}

    goto(app, "embeddings")
    assert app.selectbox[0].value == "neural"
    app.number_input[0].set_value(60)
    app.button(key="FormSubmitter:tsne_form-Draw map").click().run()
    assert not app.exception and app.get("vega_lite_chart")
    app.text_input(key="embed_query").set_value("country").run()
    assert not app.exception
    assert "ringed in black" in app.caption[-2].value


def test_checkpoint_download_bytes_upload_back_and_bad_file(app: AppTest) -> None:
    from songrec.ui.state import checkpoint_bytes

    goto(app, "train")
    button(app, "Fit itemknn").click().run()
    assert "itemknn" in app.session_state["models"]
    data = checkpoint_bytes(app.session_state["models"]["itemknn"].model)
    app.file_uploader(key="checkpoint_upload").set_value(("knn.safetensors", data, "application/octet-stream")).run()
    button(app, "Load checkpoint").click().run()
    assert not app.exception and "Loaded itemknn (uploaded knn)" in app.success[0].value
    assert "itemknn (uploaded knn)" in app.session_state["models"]

    app.file_uploader(key="checkpoint_upload").set_value(
        ("evil.safetensors", pickle.dumps({"a": 1}), "application/octet-stream")).run()
    button(app, "Load checkpoint").click().run()
    assert not app.exception
    assert "Not loaded: evil.safetensors: not a songrec checkpoint" in app.error[0].value


def test_stop_button_keeps_the_best_epoch(app: AppTest) -> None:
    goto(app, "train")
    number(app, "Epochs").set_value(300)
    number(app, "Embedding size").set_value(8)
    number(app, "Hidden size").set_value(16)
    number(app, "Batch size").set_value(32)
    app.button(key="FormSubmitter:train_form-Train neural model").click().run()
    job = app.session_state["train_job"]
    deadline = time.monotonic() + 60
    while (job.last is None or job.last.epoch < 2) and time.monotonic() < deadline:
        time.sleep(0.1)
    app.run()
    button(app, "Stop training").click().run()
    assert job.wait(60) and job.status == "stopped"
    app.run()
    assert not app.exception
    assert app.success[0].value.startswith("Stopped after")
    assert 1 <= app.session_state["models"]["neural"].model.epochs_trained < 300


def test_evaluation_compares_models(app: AppTest) -> None:
    goto(app, "evaluation")
    app.multiselect[0].set_value(["popularity", "itemknn"])
    number(app, "Held-out playlists to score (at most)").set_value(60)
    app.button(key="FormSubmitter:evaluation_form-Run evaluation").click().run()
    assert not app.exception and not app.error
    overall = app.dataframe[0].value
    assert overall["model"].tolist() == ["popularity", "itemknn"]
    assert (overall["cases"] == 60).all()
    assert len(app.get("vega_lite_chart")) == 4  # three overall metrics, one per category
    app.segmented_control(key="eval_metric").set_value("clicks").run()
    assert not app.exception


def test_build_your_own_keeps_every_pick_made_one_at_a_time(app: AppTest) -> None:
    goto(app, "recommend")
    button(app, "Fit popularity").click().run()
    app.segmented_control(key="recommend_mode").set_value("Build your own").run()
    app.text_input(key="track_query").set_value("whiskey").run()
    first, second, third = app.multiselect[0].options[:3]
    for picks in ([first], [first, second], [first, second, third]):
        app.multiselect[0].set_value(picks).run()
        assert not app.exception
        assert len(app.dataframe[0].value) == len(picks), picks
