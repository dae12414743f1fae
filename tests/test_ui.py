"""The app's library parts without a script run: the session registry, the training queue, the corpus store,
server-folder listing, chart colours, and which modules may import Streamlit."""

from __future__ import annotations

import ast
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from songrec import charts
from songrec.ui.jobs import FitJob, TrainingQueue, ordinal
from songrec.ui.registry import SessionRegistry, UserSession

ROOT = Path(__file__).parents[1]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class BlockingModel:
    """fit() reports progress until released (or told to stop by its callback)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.history: list[dict] = []
        self.fitted = False

    def fit(self, corpus, callback=None):
        while not self.release.wait(0.01):
            if callback is not None and callback(SimpleNamespace(fraction=0.5)) is False:
                return self
        self.fitted = True
        return self


def blocking_job(label: str) -> FitJob:
    return FitJob(BlockingModel(), corpus=None, label=label)


# --------------------------------------------------------------------------- session registry


def test_registry_gives_new_sessions_unguessable_tokens_and_finds_them_again() -> None:
    registry = SessionRegistry(max_sessions=4, clock=FakeClock())
    first, second = registry.open(None), registry.open(None)
    assert first is not second and first.token != second.token and len(first.token) >= 32
    assert registry.open(first.token) is first and registry.get(second.token) is second


def test_registry_never_adopts_a_token_it_did_not_make() -> None:
    registry = SessionRegistry(max_sessions=4, clock=FakeClock())
    made = registry.open(None)
    for forged in ["x" * 40, "short", "../../etc/passwd", made.token + "!"]:
        fresh = registry.open(forged)
        assert fresh is not made and fresh.token != forged
        assert forged not in registry


def test_registry_drops_the_least_recently_used_session_over_its_limit() -> None:
    clock = FakeClock()
    registry = SessionRegistry(max_sessions=2, clock=clock)
    a = registry.open(None)
    clock.now += 1
    b = registry.open(None)
    clock.now += 1
    registry.open(a.token)  # a is now the more recent
    clock.now += 1
    c = registry.open(None)
    assert len(registry) == 2
    assert a.token in registry and c.token in registry and b.token not in registry
    assert registry.get(b.token) is None


def test_registry_keeps_a_session_with_a_running_job_before_idle_ones_and_stops_it_when_dropped() -> None:
    clock = FakeClock()
    registry = SessionRegistry(max_sessions=2, clock=clock)
    busy = registry.open(None)
    job = busy.train_job = blocking_job("busy").start()
    clock.now += 1
    idle = registry.open(None)
    clock.now += 1
    newer = registry.open(None)  # over the limit: the idle session goes although the busy one is older
    assert busy.token in registry and idle.token not in registry
    newer_job = newer.train_job = blocking_job("newer").start()
    clock.now += 1
    registry.open(None)  # only busy sessions left to drop: the oldest goes and its job is stopped
    assert busy.token not in registry and newer.token in registry
    assert job.wait(5) and job.status == "stopped"
    assert newer_job.running
    newer_job.stop()
    assert newer_job.wait(5)


def test_registry_expires_idle_sessions_but_not_while_their_job_runs() -> None:
    clock = FakeClock()
    registry = SessionRegistry(max_sessions=8, idle_seconds=60, clock=clock)
    idle, busy = registry.open(None), registry.open(None)
    job = busy.train_job = blocking_job("long").start()
    clock.now += 59
    assert registry.get(idle.token) is idle  # used again: the idle time starts anew
    clock.now += 61
    assert registry.get(idle.token) is None
    assert registry.get(busy.token) is busy  # a running job counts as use
    job.model.release.set()
    assert job.wait(5) and job.status == "done"
    clock.now += 30
    registry.open(None)
    assert busy.token in registry  # idle for 30 s since the job was last seen running
    clock.now += 61
    registry.open(None)
    assert busy.token not in registry


def test_a_session_is_busy_only_while_its_job_runs() -> None:
    user = UserSession("t" * 32, 0.0)
    assert not user.busy
    user.train_job = blocking_job("j").start()
    assert user.busy
    user.close()
    assert user.train_job.wait(5) and not user.busy


# --------------------------------------------------------------------------- training queue


def test_queue_runs_one_job_at_a_time_in_order_and_shows_each_place() -> None:
    queue = TrainingQueue(max_running=1)
    first, second, third = blocking_job("1"), blocking_job("2"), blocking_job("3")
    for job in (first, second, third):
        queue.submit(job)
    assert first.status == "running" and second.queued and third.queued
    assert (first.place, second.place, third.place) == (None, 1, 2)
    assert second.describe() == "waiting: 1st in line" and third.describe() == "waiting: 2nd in line"

    first.model.release.set()
    assert first.wait(5) and first.status == "done"
    deadline = time.monotonic() + 5
    while second.status != "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert second.status == "running" and third.place == 1
    assert queue.running == [second] and queue.waiting == [third]
    second.model.release.set()
    third.model.release.set()
    assert second.wait(5) and third.wait(5)
    assert [j.status for j in (first, second, third)] == ["done"] * 3


def test_a_stopped_queued_job_leaves_the_queue_without_starting() -> None:
    queue = TrainingQueue(max_running=1)
    running, leaving, after = blocking_job("r"), blocking_job("l"), blocking_job("a")
    for job in (running, leaving, after):
        queue.submit(job)
    leaving.stop()
    assert leaving.status == "stopped" and not leaving.running and leaving.started == 0.0
    assert queue.waiting == [after] and after.place == 1
    running.stop()
    assert running.wait(5) and running.status == "stopped"
    after.model.release.set()
    assert after.wait(5) and after.status == "done"
    assert not leaving.model.fitted


def test_queue_with_two_slots_runs_two_at_once() -> None:
    queue = TrainingQueue(max_running=2)
    jobs = [queue.submit(blocking_job(str(i))) for i in range(3)]
    assert [j.status for j in jobs] == ["running", "running", "queued"]
    for job in jobs:
        job.stop()
    assert all(job.wait(5) for job in jobs)


def test_a_slot_for_work_in_the_callers_thread_waits_its_turn() -> None:
    queue = TrainingQueue(max_running=1)
    job = queue.submit(blocking_job("first"))
    places: list[int] = []
    entered = threading.Event()

    def evaluate() -> None:
        with queue.slot(on_wait=places.append, poll=0.01):
            entered.set()

    worker = threading.Thread(target=evaluate)
    worker.start()
    time.sleep(0.1)
    assert not entered.is_set() and places and set(places) == {1}
    job.model.release.set()
    worker.join(5)
    assert entered.is_set() and queue.running == [] and queue.waiting == []


def test_ordinals() -> None:
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"
    ]  # fmt: skip


# --------------------------------------------------------------------------- corpus store and server folders


def test_corpus_store_reads_a_key_once_when_two_sessions_ask_at_the_same_time() -> None:
    from songrec.ui.datasets import CorpusStore

    calls = []

    def slow_loader(files, progress=None, cache_dir=None):
        calls.append(files)
        time.sleep(0.2)
        return ("corpus", "report")

    store = CorpusStore(loader=slow_loader)
    results = []
    threads = [threading.Thread(target=lambda: results.append(store.get(("a.json",), "sig"))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(calls) == 1 and results == [("corpus", "report")] * 3


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """SONGREC_DATA_DIR with one good folder, a link leading outside, a link to a file outside, and a loop."""
    root, outside = tmp_path / "data", tmp_path / "outside"
    (root / "good").mkdir(parents=True)
    outside.mkdir()
    for folder in (root / "good", outside):
        (folder / "mpd.slice.0-999.json").write_text('{"info": {}, "playlists": []}')
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "good" / "mpd.slice.1000-1999.json").symlink_to(outside / "mpd.slice.0-999.json")
    (root / "loop").symlink_to(root / "loop")
    monkeypatch.setenv("SONGREC_DATA_DIR", str(root))
    return root


def test_server_folders_leave_out_links_that_lead_outside_the_data_folder(data_root: Path) -> None:
    from songrec.ui.datasets import data_folders

    folders = data_folders()
    assert list(folders) == ["good"]
    assert [f.name for f in folders["good"].files] == ["mpd.slice.0-999.json"]  # the file link is left out too


def test_loading_a_folder_outside_the_data_folder_is_a_clear_error(data_root: Path) -> None:
    from songrec.ui.datasets import DatasetError, load_folder

    for path in (data_root / "escape", data_root / "loop", data_root.parent / "outside", data_root / "missing"):
        with pytest.raises(DatasetError, match="not inside the server's data folder") as caught:
            load_folder(path, None)
        assert str(data_root) not in str(caught.value)  # no server path in what the page shows


# --------------------------------------------------------------------------- charts


def test_each_model_keeps_its_colour_whatever_is_selected() -> None:
    assert charts.model_colour("neural") == "#1DB954"
    assert charts.model_colour("popularity") == charts.MODEL_COLOURS["popularity"]
    assert len(set(charts.MODEL_COLOURS.values())) == len(charts.MODEL_COLOURS)
    names = ["itemknn (uploaded knn)", "neural", "popularity", "my-model"]
    forward = dict(zip(charts.model_scale(names).domain, charts.model_scale(names).range, strict=True))
    backward = dict(zip(charts.model_scale(names[::-1]).domain, charts.model_scale(names[::-1]).range, strict=True))
    assert forward == backward
    assert charts.model_colour("my-model") in charts.OTHER_MODEL_COLOURS
    assert charts.model_colour("my-model") == charts.model_colour("my-model")


def test_charts_colour_models_by_name() -> None:
    import pandas as pd

    overall = pd.DataFrame({"model": ["popularity", "neural"], "r_precision": [0.1, 0.2]})
    spec = charts.metric_bars(overall, "r_precision", "R-precision").to_dict()
    scale = spec["encoding"]["color"]["scale"]
    assert dict(zip(scale["domain"], scale["range"], strict=True)) == {
        "popularity": charts.MODEL_COLOURS["popularity"],
        "neural": charts.MODEL_COLOURS["neural"],
    }


# --------------------------------------------------------------------------- module boundaries


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_only_the_ui_package_imports_streamlit_and_pages_build_no_charts() -> None:
    library = [p for p in (ROOT / "songrec").rglob("*.py") if "ui" not in p.relative_to(ROOT / "songrec").parts]
    assert [str(p) for p in library if "streamlit" in _imports(p)] == []
    assert "altair" in _imports(ROOT / "songrec" / "charts.py")
    pages = sorted((ROOT / "app_pages").glob("*.py"))
    assert pages and [p.name for p in pages if "altair" in _imports(p)] == []
    assert [p.name for p in pages if "alt.Scale" in p.read_text() or "#1DB954" in p.read_text()] == []


def test_metric_bars_tilt_model_names_that_would_overlap() -> None:
    import pandas as pd

    def axis(names: list[str]) -> dict:
        overall = pd.DataFrame({"model": names, "r_precision": [0.1] * len(names)})
        return charts.metric_bars(overall, "r_precision", "R-precision").to_dict()["encoding"]["x"]["axis"]

    assert axis(["popularity", "neural"])["labelAngle"] == 0
    five = axis(["neural", "popularity", "itemknn", "hybrid", "als"])
    assert five["labelAngle"] != 0 and five["labelOverlap"] is False  # every model named, none hidden
