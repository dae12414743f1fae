"""The app's showcase features through AppTest: the notebook replayed beside the fix (Train), reasons,
two models side by side and the exports (Recommend), coverage for every model (Evaluation).

The same small generated data as test_app.py (400 playlists), and its helpers.
"""

from __future__ import annotations

import io
from typing import ClassVar

import pandas as pd
import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest, app_test
from test_app import button, goto, user

from songrec import explore
from songrec.ingest import load_corpus
from songrec.mpd import read_slice


def wait_for_replay(at: AppTest, timeout: float = 120) -> None:
    job = user(at).replay_job
    assert job is not None
    assert job.wait(timeout), "the replay did not end in time"
    assert job.status == "done", job.error
    at.run()
    assert not at.exception, at.exception


def toggle(at: AppTest, key: str):
    return next(t for t in at.toggle if t.key == f"notebook_fix.{key}")


def test_the_notebook_section_trains_as_written_beside_the_fix_and_a_toggle_changes_what_is_trained(
    app: AppTest,
) -> None:
    goto(app, "train")
    assert any(h.value == "The notebook, as written" for h in app.subheader)
    shown = "\n".join(c.value for c in app.caption)
    for cause in explore.NOTEBOOK_CAUSES:  # one sentence per cause, and its own toggle
        assert cause.why.split(". ")[0] in shown
        assert not toggle(app, cause.key).value
    button(app, "Train the notebook and the fixed model").click().run()
    wait_for_replay(app)
    runs = user(app).results["notebook_replay"].runs
    assert len(runs) == 1 and runs[0].fixes == ()
    assert list(runs[0].report.summary["model"]) == [explore.AS_WRITTEN, explore.FIXED]
    metrics = [m.label for m in app.metric]
    assert metrics.count("Coverage") == 2 and metrics.count("R-precision") == 2 and metrics.count("Overlap") == 2
    assert len(app.get("vega_lite_chart")) >= 1  # the spread of the top-15 confidences
    confidences = runs[0].report.confidences
    assert len(confidences) == 2 * 2 * 15  # two models, two playlists, ranks 1-15
    for _, one in confidences.groupby(["model", "playlist"]):
        assert one["rank"].tolist() == list(range(1, 16)) and one["confidence"].is_monotonic_decreasing
    lists = [d.value for d in app.dataframe if "country track" in d.value.columns]
    assert len(lists) == 2 and all(len(frame) == 15 for frame in lists)

    toggle(app, "narrow_head").set_value(True).run()
    button(app, "Train the notebook and the fixed model").click().run()
    wait_for_replay(app)
    state = user(app).results["notebook_replay"]
    assert [run.fixes for run in state.runs] == [(), ("narrow_head",)]
    assert list(state.runs[-1].report.summary["model"]) == [explore.AS_WRITTEN, explore.WITH_FIXES, explore.FIXED]
    with_fixes = [model for (_, kind, params), (model, _) in state.models.items() if kind == "notebook" and params]
    assert len(with_fixes) == 1 and with_fixes[0].settings.tied_head and not with_fixes[0].settings.minibatches
    assert len(state.models) == 3  # as written and fixed reused from the first run, only the fixed notebook new
    assert [m.label for m in app.metric].count("Coverage") == 3
    runs_table = next(d.value for d in app.dataframe if "fixes on" in d.value.columns)
    assert runs_table["fixes on"].tolist() == ["none (as written)", "untied narrow head"]
    goto(app, "train")  # the toggles start from the last replay's fixes
    assert toggle(app, "narrow_head").value and not toggle(app, "embeddings").value


def fit_two(at: AppTest) -> None:
    goto(at, "train")
    button(at, "Fit popularity").click().run()
    button(at, "Fit itemknn").click().run()
    assert not at.exception


def test_recommend_shows_reasons_two_models_side_by_side_and_exports(app: AppTest) -> None:
    fit_two(app)
    goto(app, "recommend")
    table = app.dataframe[1].value  # seeds and held-out tracks first, then the recommendations
    assert "reason" in table.columns and len(table) == 20
    playlist = app.dataframe[0].value
    seed_names = playlist.loc[playlist["role"] == "seed", "track"].tolist()
    for reason in table["reason"]:  # each reason names the seeds behind the track
        assert any(f"“{name}”" in reason for name in seed_names), (reason, seed_names)
    assert any(h.value == "Two models, one playlist" for h in app.subheader)
    second = next(s for s in app.selectbox if s.key == "compare_model")
    first_label = next(s for s in app.selectbox if s.label == "Model").value
    assert second.value != first_label
    metrics = {m.label: m.value for m in app.metric}
    left, right = app.dataframe[2].value, app.dataframe[3].value
    assert len(left) == len(right) == 20 and "in both" in left.columns
    assert (
        int(metrics["In both lists"].split(" of ")[0])
        == (left["in both"] == "✓").sum()
        == (right["in both"] == "✓").sum()
    )
    assert int(metrics[f"Held out found by {first_label}"]) == (left["hit"] == "✓").sum()
    assert int(metrics[f"Held out found by {second.value}"]) == (right["hit"] == "✓").sum()


class RecordingStorage(MemoryMediaFileStorage):
    """AppTest's media storage, remembering every file it was given (AppTest drops its storage after a run)."""

    files: ClassVar[dict[str, bytes]] = {}

    def load_and_get_id(self, path_or_data, mimetype, kind, filename=None) -> str:
        file_id = super().load_and_get_id(path_or_data, mimetype, kind, filename)
        RecordingStorage.files[file_id] = self.get_file(file_id).content
        return file_id


def download(at: AppTest, key: str) -> tuple[str, bytes]:
    """(label, bytes) of the download button with this key: what a click in a browser saves."""
    element = next(e for e in at.get("download_button") if e.proto.id.endswith(f"-{key}"))
    file_id = element.proto.url.rsplit("/", 1)[-1].split(".")[0]
    return element.proto.label, RecordingStorage.files[file_id]


def test_both_exports_give_valid_files(app: AppTest, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", RecordingStorage)
    fit_two(app)
    goto(app, "recommend")
    shown = app.dataframe[1].value
    label, data = download(app, "export_csv")
    assert label == "Recommendations as CSV"
    csv = pd.read_csv(io.BytesIO(data))
    assert csv["track"].tolist() == shown["track"].tolist()
    assert {"rank", "track", "artist", "score", "reason", "uri"} <= set(csv.columns)
    label, data = download(app, "export_slice")
    assert label == "Playlist as MPD JSON"
    playlist = read_slice(data, "export.json").playlists[0]
    seeds = app.dataframe[0].value
    n_seeds = int((seeds["role"] == "seed").sum())
    uris = [t.track_uri for t in playlist.tracks]
    assert len(uris) == n_seeds + 20 and uris[n_seeds:] == csv["uri"].tolist()
    path = tmp_path / "mpd.slice.export.json"
    path.write_bytes(data)
    corpus, report = load_corpus([path])
    assert corpus.n_playlists == 1 and not report.errors


def test_evaluation_shows_coverage_for_every_model_and_offers_the_notebook(app: AppTest) -> None:
    goto(app, "evaluation")
    models = next(m for m in app.multiselect if m.label == "Models")
    assert "notebook" in models.options
    models.set_value(["notebook", "popularity"])
    app.button(key="FormSubmitter:evaluation_form-Run evaluation").click().run()
    assert not app.exception, app.exception
    overall = app.dataframe[0].value
    assert overall["model"].tolist() == ["notebook", "popularity"]
    assert overall["coverage"].between(0, 1).all() and overall["coverage"].nunique() == 2
    assert len(app.get("vega_lite_chart")) == 5  # four metric bars (coverage among them) and per category
    app.segmented_control(key="eval_metric").set_value("coverage").run()
    assert not app.exception
    per_category = app.dataframe[1].value
    assert set(per_category.columns) >= {"category", "notebook", "popularity"}


def test_export_file_names_are_safe() -> None:
    assert explore.file_stem("Christmas Songs 🎄 / 2017!") == "christmas-songs-2017"
    assert explore.file_stem("///") == "playlist"
