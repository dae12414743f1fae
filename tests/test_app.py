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


def user(at: AppTest):
    """The server-side session (songrec.ui.registry.UserSession) this AppTest's runs use."""
    return at.session_state["user_session"]


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
    job = user(at).train_job
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


def test_upload_keeps_good_files_and_names_bad_ones(app: AppTest, app_demo_folder: Path) -> None:
    goto(app, "train")
    button(app, "Fit popularity").click().run()  # fitted on the demo data, used on the upload below
    goto(app, "dataset")
    good = (app_demo_folder / "mpd.slice.0-999.json").read_bytes()
    data = json.loads(good)
    data["playlists"] = data["playlists"][:50]
    small = json.dumps(data).encode()
    data["playlists"][0]["tracks"][0].pop("track_uri")
    bad = json.dumps(data).encode()
    app.segmented_control(key="dataset_source").set_value("Upload slices").run()
    app.file_uploader(key="slice_upload").set_value(
        [
            ("mpd.slice.0-999.json.gz", gzip.compress(small), "application/gzip"),
            ("broken.json", bad, "application/json"),
            ("truncated.json", small[:500], "application/json"),
        ]
    ).run()
    button(app, "Load uploaded files").click().run()
    assert not app.exception
    assert "2 files could not be read (1 loaded)" in app.error[0].value
    problems = app.dataframe[0].value
    assert problems["file"].tolist() == ["broken.json", "truncated.json"]
    assert problems["field"].iat[0] == "playlists[0].tracks[0].track_uri"
    assert "missing" in problems["problem"].iat[0] and "truncated" in problems["problem"].iat[1]
    assert "Uploaded (1 file)" in sidebar_text(app) and "50 playlists" in sidebar_text(app)
    assert user(app).dataset.ref.kind == "upload"
    assert "popularity · other data" in sidebar_text(app)
    goto(app, "recommend")  # the demo-fitted model speaks the upload's track ids (matched by URI)
    assert not app.error and len(app.dataframe[-1].value) == 20


def test_server_folder_with_files_to_load(
    app: AppTest, app_demo_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
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
    from songrec.ui.models import checkpoint_bytes

    goto(app, "train")
    button(app, "Fit itemknn").click().run()
    assert "itemknn" in user(app).models
    data = checkpoint_bytes(user(app).models["itemknn"].model)
    app.file_uploader(key="checkpoint_upload").set_value(("knn.safetensors", data, "application/octet-stream")).run()
    button(app, "Load checkpoint").click().run()
    assert not app.exception and "Loaded itemknn (uploaded knn)" in app.success[0].value
    assert "itemknn (uploaded knn)" in user(app).models

    app.file_uploader(key="checkpoint_upload").set_value(
        ("evil.safetensors", pickle.dumps({"a": 1}), "application/octet-stream")
    ).run()
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
    job = user(app).train_job
    deadline = time.monotonic() + 60
    while (job.last is None or job.last.epoch < 2) and time.monotonic() < deadline:
        time.sleep(0.1)
    app.run()
    button(app, "Stop training").click().run()
    assert job.wait(60) and job.status == "stopped"
    app.run()
    assert not app.exception
    assert app.success[0].value.startswith("Stopped after")
    assert 1 <= user(app).models["neural"].model.epochs_trained < 300


def test_evaluation_compares_models(app: AppTest) -> None:
    goto(app, "evaluation")
    app.multiselect[0].set_value(["popularity", "itemknn"])
    number(app, "Max cases").set_value(60)
    app.button(key="FormSubmitter:evaluation_form-Run evaluation").click().run()
    assert not app.exception and not app.error
    overall = app.dataframe[0].value
    assert overall["model"].tolist() == ["popularity", "itemknn"]
    assert (overall["cases"] == 60).all()
    assert len(app.get("vega_lite_chart")) == 5  # four overall metrics (coverage among them), one per category
    app.segmented_control(key="eval_metric").set_value("clicks").run()
    assert not app.exception


def test_a_fitted_baseline_offers_a_refit_at_once(app: AppTest) -> None:
    goto(app, "train")
    button(app, "Fit popularity").click().run()
    assert not app.exception
    labels = [b.label for b in app.button]
    assert "Refit popularity" in labels and "Fit popularity" not in labels, labels


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


# --------------------------------------------------------------------------- sessions that survive a reload


def reopen(token: str | None, page: str | None = None) -> AppTest:
    """A new browser tab (or a reload): a fresh AppTest, with the link's ?session= token when given."""
    fresh = AppTest.from_file(APP, default_timeout=120)
    if token is not None:
        fresh.query_params["session"] = token
    fresh.run()
    assert not fresh.exception, fresh.exception
    if page is not None:
        goto(fresh, page)
    return fresh


def start_long_training(at: AppTest) -> None:
    goto(at, "train")
    number(at, "Epochs").set_value(300)
    number(at, "Embedding size").set_value(8)
    number(at, "Hidden size").set_value(16)
    number(at, "Batch size").set_value(32)
    next(s for s in at.selectbox if s.label == "Device").set_value("cpu")
    at.button(key="FormSubmitter:train_form-Train neural model").click().run()
    assert not at.exception and user(at).train_job is not None


def stop_and_wait(job) -> None:
    job.stop()
    assert job.wait(60), job.describe()


def test_a_reload_with_the_same_link_keeps_data_and_models_and_another_link_sees_none(
    app: AppTest, app_demo_folder: Path
) -> None:
    token = app.query_params["session"]
    assert token and len(token) >= 32  # made on the first visit and put in the URL
    goto(app, "train")
    button(app, "Fit itemknn").click().run()
    goto(app, "dataset")
    data = json.loads((app_demo_folder / "mpd.slice.0-999.json").read_bytes())
    data["playlists"] = data["playlists"][:30]
    app.segmented_control(key="dataset_source").set_value("Upload slices").run()
    app.file_uploader(key="slice_upload").set_value([("mine.json", json.dumps(data).encode(), "application/json")])
    app.run()
    button(app, "Load uploaded files").click().run()
    assert "30 playlists" in sidebar_text(app)

    again = reopen(token)
    assert again.query_params["session"] == token
    assert user(again) is user(app)
    text = sidebar_text(again)
    assert "Uploaded (1 file)" in text and "30 playlists" in text and "itemknn · other data" in text
    goto(again, "recommend")
    assert again.selectbox[0].value == "itemknn"

    stranger = reopen(None)
    assert stranger.query_params["session"] != token
    assert "None fitted yet" in "\n".join(c.value for c in stranger.sidebar.caption)
    assert "itemknn" not in sidebar_text(stranger) and "400 playlists" in sidebar_text(stranger)

    forged = reopen("A" * 32)  # a token the server never made is not adopted
    assert forged.query_params["session"] not in ("A" * 32, token)
    assert not user(forged).models


def test_a_reload_reattaches_a_running_training_and_collects_its_model(app: AppTest) -> None:
    start_long_training(app)
    job = user(app).train_job
    deadline = time.monotonic() + 60
    while (job.last is None or job.last.epoch < 2) and time.monotonic() < deadline:
        time.sleep(0.1)

    tab = reopen(app.query_params["session"], "train")
    assert user(tab).train_job is job and job.running
    assert number(tab, "Epochs").value == 300 and number(tab, "Hidden size").value == 16  # the chosen settings
    assert any("epoch" in p.proto.text for p in tab.get("progress"))
    button(tab, "Stop training").click().run()
    assert job.wait(60) and job.status == "stopped"
    tab.run()
    assert not tab.exception
    assert tab.success[0].value.startswith("Stopped after")
    assert "neural · cpu" in sidebar_text(tab)
    app.run()  # the first tab sees the same model, collected once
    assert list(user(app).models) == ["neural"] and "neural · cpu" in sidebar_text(app)


def test_a_second_users_training_waits_in_line_and_can_leave_it(app: AppTest) -> None:
    start_long_training(app)
    first = user(app).train_job
    other = reopen(None)
    try:
        start_long_training(other)
        queued = user(other).train_job
        assert queued.queued and queued.place == 1
        assert any("waiting: 1st in line" in p.proto.text for p in other.get("progress"))
        button(other, "Leave the queue").click().run()
        assert queued.status == "stopped" and queued.started == 0.0
        other.run()
        assert "Left the queue" in other.info[0].value and "neural" not in user(other).models
    finally:
        stop_and_wait(first)


def train_options() -> dict[str, str]:
    """`songrec train --help`'s options and their help, from the parser itself."""
    from songrec.cli import build_parser

    parser = build_parser(["train", "--data", "x", "--out", "y"])
    train = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "train")[1]
    # argparse formats help with %, so the options hold a literal % as %%
    return {opt: (action.help or "").replace("%%", "%") for action in train._actions for opt in action.option_strings}


def test_the_train_form_and_train_help_come_from_the_same_settings(app: AppTest) -> None:
    from songrec.settings import specs as specs_of
    from songrec.ui.training import setting_classes

    goto(app, "train")
    kinds = ("number_input", "slider", "selectbox", "checkbox")
    widgets = {w.label: w for kind in kinds for w in app.get(kind) if w.form_id == "train_form"}
    options = train_options()
    specs = [spec for cls in setting_classes() for spec in specs_of(cls)]
    form_names = {spec.name for spec in specs}
    cli_names = {opt[2:].replace("-", "_") for opt, text in options.items() if "default" in (text or "")}
    assert form_names == cli_names - {"cache_dir"}  # every setting in both, and nothing else
    for spec in specs:
        widget = widgets[spec.label]
        assert spec.help[1:] in widget.help and spec.help in options[spec.option], spec.name
        if spec.name not in ("max_files", "device"):
            assert spec.allowed() in widget.help and spec.allowed() in options[spec.option], spec.name
        if getattr(widget, "min", None) is not None and spec.name != "max_files":
            assert (widget.min, widget.max) == (spec.low, spec.high), spec.name
    assert next(w for w in app.number_input if w.label == "Learning rate").proto.format == "%.1e"
    assert next(w for w in app.selectbox if w.label == "Device").options[:2] == ["auto", "cpu"]


def start_out_of_range_script() -> None:
    import streamlit as st

    from songrec.settings import SettingError
    from songrec.ui import training

    try:  # what the Train page calls with the form's values (the form's widgets keep them in range)
        training.start_training({"max_files": 0, "min_track_count": 0}, None)
    except SettingError as exc:
        st.error(str(exc))
    st.session_state["started"] = training.train_job() is not None


def test_an_out_of_range_setting_gets_the_same_message_as_from_the_cli(capsys: pytest.CaptureFixture) -> None:
    from songrec.cli import main

    at = AppTest.from_function(start_out_of_range_script, default_timeout=60)
    at.run()
    assert not at.exception and at.session_state["started"] is False
    message = at.error[0].value
    assert "min_track_count" in message and "from 1 to" in message
    assert main(["train", "--data", "x", "--out", "y", "--min-track-count", "0"]) != 0
    rule = message.partition(", not ")[0]  # the CLI quotes the text it was given: not '0'
    assert rule == "neural setting min_track_count must be from 1 to 1_000_000" and rule in capsys.readouterr().err


def settings_form_script() -> None:
    from dataclasses import dataclass

    import streamlit as st

    from songrec.settings import Settings, setting, specs
    from songrec.ui.widgets import settings_form

    @dataclass(frozen=True)
    class Toy(Settings):
        rate: float = setting(1e-3, "how fast it learns", low=1e-6, high=1.0, step=1e-4, log=True)
        share: float = setting(0.2, "a share held out", low=0.0, high=0.5, step=0.05)
        size: int = setting(16, "how big it is", low=4, high=64, step=4, label="Width")
        mode: str = setting("a", "which mode", choices=("a", "b"))
        tied: bool = setting(True, "tie the head")

    st.session_state["values"] = Toy.build(settings_form(specs(Toy), {"size": 32}, columns=3, key="toy")).as_dict()


def test_settings_form_draws_one_widget_per_setting_from_its_spec() -> None:
    at = AppTest.from_function(settings_form_script, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    rate, width = at.number_input
    assert (rate.label, rate.min, rate.max, rate.step, rate.proto.format) == ("Rate", 1e-6, 1.0, 1e-4, "%.1e")
    assert "How fast it learns (from 1e-06 to 1; default 0.001)" in rate.help
    assert (width.label, width.value, width.min, width.max, width.step) == ("Width", 32, 4, 64, 4)
    share = at.slider[0]
    assert (share.label, share.value, share.min, share.max, share.step) == ("Share", 0.2, 0.0, 0.5, 0.05)
    assert at.selectbox[0].options == ["a", "b"] and at.checkbox[0].value is True
    assert at.session_state["values"] == {"rate": 1e-3, "share": 0.2, "size": 32, "mode": "a", "tied": True}

    width.set_value(48)
    at.selectbox[0].set_value("b")
    at.checkbox[0].uncheck()
    at.run()
    assert at.session_state["values"] == {"rate": 1e-3, "share": 0.2, "size": 48, "mode": "b", "tied": False}


def test_server_folder_lists_no_link_leading_outside(app: AppTest, tmp_path: Path, monkeypatch) -> None:
    root, outside = tmp_path / "data", tmp_path / "outside"
    write_demo(root / "mpd", 1200, seed=3)
    write_demo(outside, 1200, seed=4)
    (root / "escape").symlink_to(outside, target_is_directory=True)
    monkeypatch.setenv("SONGREC_DATA_DIR", str(root))
    app.run()
    app.segmented_control(key="dataset_source").set_value("Server folder").run()
    assert app.selectbox[0].options == ["mpd"]
    assert not app.exception

    number(app, "Files to load").set_value(1)
    button(app, "Load folder").click().run()
    assert "1,000 playlists" in sidebar_text(app)

    write_demo(root / "other", 1000, seed=6)
    (root / "mpd").rename(tmp_path / "moved")  # then the listed folder is swapped for a link leading outside
    (root / "mpd").symlink_to(outside, target_is_directory=True)
    app.run()
    assert not app.exception
    assert app.selectbox[0].options == ["other"]


def test_an_unexpected_failure_reading_uploads_is_a_message_without_server_paths(
    app: AppTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from songrec.ui import datasets

    def broken(*args, **kwargs):
        raise RecursionError(f"maximum recursion depth exceeded in {datasets.demo_dir()}/secret.py")

    monkeypatch.setattr(datasets, "load_corpus", broken)
    app.segmented_control(key="dataset_source").set_value("Upload slices").run()
    app.file_uploader(key="slice_upload").set_value([("deep.json", b"[[[[", "application/json")]).run()
    button(app, "Load uploaded files").click().run()
    assert not app.exception
    message = app.error[0].value
    assert message.startswith("Not loaded: The uploaded files could not be read (RecursionError")
    assert str(datasets.demo_dir()) not in message and "Demo data" in sidebar_text(app)


def test_a_baseline_is_fitted_with_the_settings_of_its_expander(app: AppTest) -> None:
    goto(app, "train")
    neighbours = next(n for n in app.number_input if n.key == "baseline.itemknn.neighbours")
    assert neighbours.label == "Neighbours" and neighbours.value == 500  # the settings class's default
    neighbours.set_value(50).run()
    button(app, "Fit itemknn").click().run()
    assert not app.exception
    assert user(app).models["itemknn"].model.settings.neighbours == 50
    again = reopen(app.query_params["session"], "train")  # the choice is remembered
    assert next(n for n in again.number_input if n.key == "baseline.itemknn.neighbours").value == 50


def test_a_model_registered_in_one_line_is_in_the_apps_lists(app: AppTest) -> None:
    from songrec.models import register_model, unregister_model
    from songrec.models.popularity import PopularityRecommender

    class ToyRecommender(PopularityRecommender):
        name = "app-toy"

    register_model("app-toy", ToyRecommender, "popularity under another name")
    try:
        goto(app, "train")
        button(app, "Fit app-toy").click().run()
        assert not app.exception and "- app-toy" in sidebar_text(app)
        goto(app, "recommend")
        assert app.selectbox[0].value == "app-toy"  # the most recent model fitted on this data comes first
        goto(app, "evaluation")
        assert "app-toy" in app.multiselect[0].options
    finally:
        unregister_model("app-toy")
