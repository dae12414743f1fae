"""The app in a real browser: `streamlit run app.py` driven by Debian's Chromium through Playwright.

Walks upload -> train (2 epochs, tiny) -> recommend -> genre validation -> t-SNE -> evaluation on
small generated data and saves a screenshot of each step in artifacts/screenshots/ (ignored by
git; SONGREC_SCREENSHOTS moves it). Skips when Chromium or Playwright is missing.
Run alone with `pytest -m browser`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from songrec.synthetic import write_demo

pytestmark = pytest.mark.browser

ROOT = Path(__file__).parents[1]
CHROMIUM = os.environ.get("SONGREC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(os.environ.get("SONGREC_SCREENSHOTS", ROOT / "artifacts" / "screenshots"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(env_extra: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    """`streamlit run app.py` on a free loopback port; returns (process, base URL) once healthy."""
    port = _free_port()
    env = {**os.environ, **env_extra}
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    handle = log.open("wb")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited early:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.3)
    stop_server(process)
    raise RuntimeError(f"streamlit did not become healthy in 60 s:\n{log.read_text()}")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def settle(page, quiet_ms: int = 700, timeout_s: float = 90) -> None:
    """Wait until the app has not been running a script for `quiet_ms` (the 'Running…' widget is gone)."""
    deadline = time.monotonic() + timeout_s
    quiet_since = None
    while time.monotonic() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').count() > 0
        if running:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif (time.monotonic() - quiet_since) * 1000 >= quiet_ms:
            return
        page.wait_for_timeout(100)


def shoot(page, name: str, folder: Path = SHOTS) -> Path:
    """A screenshot of the whole page: the viewport is stretched to the app's scroll height first."""
    folder.mkdir(parents=True, exist_ok=True)
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], [data-testid=stAppViewContainer]')]"
        ".map(e => e.scrollHeight), document.body.scrollHeight)"
    )
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": min(max(int(height), 800), 7000)})
    page.wait_for_timeout(600)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    page.set_viewport_size(size)
    return path


def open_page(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title, level=1).wait_for(timeout=30_000)
    settle(page)


def set_number(page, label: str, value: int) -> None:
    """Type into the number box of that label (`page` may be a locator: a form, when others share the label)."""
    field = page.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Tab")


def train_form(page):
    """The neural model's form on the Train page (the notebook baseline's settings have an Epochs box too)."""
    return page.locator('[data-testid="stForm"]').first


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install playwright)")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set SONGREC_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    demo = tmp_path_factory.mktemp("browser-demo")
    write_demo(demo, 300, seed=0)
    process, url = start_server({"SONGREC_DEMO_DIR": str(demo)}, tmp_path_factory.mktemp("log") / "streamlit.log")
    yield url
    stop_server(process)


def test_walkthrough(browser, server: str, tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    write_demo(upload, 600, seed=4)  # what a person uploads: a slice of 600 playlists
    bad = tmp_path / "mpd.slice.broken.json"
    data = json.loads((upload / "mpd.slice.0-999.json").read_text())
    data["playlists"][2]["tracks"][0]["track_uri"] = 42
    bad.write_text(json.dumps(data))

    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server)
    page.get_by_role("heading", name="Dataset", level=1).wait_for(timeout=60_000)
    settle(page)
    assert "300 playlists" in page.locator('[data-testid="stSidebar"]').inner_text()
    shoot(page, "01-dataset-demo")

    page.get_by_role("radio", name="Upload slices").click()
    settle(page)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        [str(upload / "mpd.slice.0-999.json"), str(bad)]
    )
    uploader = page.locator('[data-testid="stFileUploader"]')
    deadline = time.monotonic() + 30
    while "broken.json" not in uploader.inner_text() and time.monotonic() < deadline:  # long names are elided
        page.wait_for_timeout(200)
    settle(page)
    page.get_by_role("button", name="Load uploaded files").click()
    page.get_by_text("1 file could not be read (1 loaded)").wait_for(timeout=30_000)
    settle(page)
    sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
    assert "Uploaded (1 file)" in sidebar and "600 playlists" in sidebar
    assert page.get_by_text("playlists[2].tracks[0].track_uri").count() or "track_uri" in page.content()
    shoot(page, "02-dataset-uploaded")

    open_page(page, "Train")
    form = train_form(page)
    set_number(form, "Epochs", 2)
    set_number(form, "Embedding size", 32)
    set_number(form, "Hidden size", 64)
    page.get_by_role("button", name="Train neural model").click()
    page.get_by_text("Trained 2 epochs").wait_for(timeout=120_000)
    settle(page)
    # the sidebar lists the trained model (after the rerun that follows the job's end)
    page.locator('[data-testid="stSidebar"]').get_by_text(re.compile(r"neural · \w+ · 2 epochs")).wait_for(
        timeout=15_000
    )
    shoot(page, "03-train")

    open_page(page, "Recommend")
    page.get_by_text("Found in top 20").wait_for()
    shoot(page, "04-recommend")

    open_page(page, "Genre validation")
    page.get_by_text("Three example playlists").wait_for()
    shoot(page, "05-genres")

    open_page(page, "Embeddings")
    set_number(page, "Most frequent tracks (N)", 300)
    page.get_by_role("button", name="Draw map").click()
    settle(page)
    page.get_by_label("Highlight a playlist (search by name)").fill("country")
    page.get_by_label("Highlight a playlist (search by name)").press("Enter")
    page.get_by_text("ringed in black").wait_for(timeout=60_000)
    settle(page)
    assert page.locator('[data-testid="stVegaLiteChart"]').count() >= 1
    shoot(page, "06-embeddings")

    open_page(page, "Evaluation")
    page.get_by_role("button", name="Run evaluation").click()
    page.get_by_text("Per category").wait_for(timeout=120_000)
    settle(page)
    shoot(page, "07-evaluation")

    exceptions = page.locator('[data-testid="stException"]').count()
    assert exceptions == 0, page.locator('[data-testid="stException"]').first.inner_text()
    assert not errors, errors
    page.close()


def sidebar_text(page) -> str:
    return page.locator('[data-testid="stSidebar"]').inner_text()


def reload(page) -> None:
    """What a person's F5 does: the tab's Streamlit session ends and a new one starts from the URL."""
    page.reload()
    page.locator('[data-testid="stSidebarUserContent"]').get_by_text("Dataset", exact=True).wait_for(timeout=60_000)
    settle(page)


def test_a_reload_keeps_the_fitted_models(browser, server: str) -> None:
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(server)
    page.get_by_role("heading", name="Dataset", level=1).wait_for(timeout=60_000)
    settle(page)
    open_page(page, "Train")
    page.get_by_role("button", name="Fit popularity").click()
    page.locator('[data-testid="stSidebar"]').get_by_text("popularity").wait_for(timeout=30_000)
    settle(page)
    assert "session=" in page.url
    token = page.url.split("session=")[1]

    reload(page)
    assert page.url.split("session=")[1] == token
    assert "popularity" in sidebar_text(page) and "None fitted yet" not in sidebar_text(page)

    stranger = browser.new_page(viewport={"width": 1440, "height": 1000})  # another person: a link of their own
    stranger.goto(server)
    stranger.get_by_role("heading", name="Dataset", level=1).wait_for(timeout=60_000)
    settle(stranger)
    assert "None fitted yet" in sidebar_text(stranger) and token not in stranger.url
    stranger.close()
    page.close()


def test_a_reload_finds_the_training_still_running_and_its_result(browser, server: str) -> None:
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server)
    page.get_by_role("heading", name="Dataset", level=1).wait_for(timeout=60_000)
    settle(page)
    open_page(page, "Train")
    form = train_form(page)
    # Long enough that the reload always lands mid-run, however fast the machine: it is stopped below.
    set_number(form, "Epochs", 500)
    set_number(form, "Patience", 0)
    set_number(form, "Embedding size", 32)
    set_number(form, "Hidden size", 64)
    page.get_by_role("button", name="Train neural model").click()
    page.get_by_role("button", name="Stop training").wait_for(timeout=60_000)

    reload(page)
    assert page.get_by_role("heading", name="Train", level=1).count() == 1  # the same page, from the URL
    page.get_by_role("button", name="Stop training").wait_for(timeout=15_000)  # the job, still running
    assert "Training the neural model" in sidebar_text(page)
    shoot(page, "08-train-after-reload")
    page.get_by_text(re.compile(r"epoch [2-9]\d*/500")).first.wait_for(timeout=120_000)  # an epoch done
    page.get_by_role("button", name="Stop training").click()
    page.get_by_text(re.compile(r"Stopped after \d+ epoch")).wait_for(timeout=120_000)  # collected after the reload
    page.locator('[data-testid="stSidebar"]').get_by_text(re.compile(r"neural · \w+ · \d+ epochs?")).wait_for(
        timeout=15_000
    )
    assert train_form(page).get_by_label("Epochs", exact=True).input_value() == "500"  # the chosen settings came back
    assert page.locator('[data-testid="stException"]').count() == 0
    assert not errors, errors
    page.close()


def test_the_notebook_replay_reasons_two_models_and_both_downloads(browser, server: str, tmp_path: Path) -> None:
    from songrec.ingest import load_corpus
    from songrec.mpd import read_slice

    page = browser.new_page(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server)
    page.get_by_role("heading", name="Dataset", level=1).wait_for(timeout=60_000)
    settle(page)

    open_page(page, "Train")
    page.get_by_role("button", name="Train the notebook and the fixed model").click()
    page.get_by_text("How sure each model is of its top 15").wait_for(timeout=120_000)
    settle(page)
    assert page.get_by_text("notebook, as written", exact=True).count() >= 1
    page.get_by_text("Untied narrow head").scroll_into_view_if_needed()
    head_fix = page.locator('[data-testid="stCheckbox"]').filter(has_text="Fix it").nth(3)  # the 4th cause: the head
    for _ in range(3):  # a click that lands while the page still reruns can be lost: click until it holds
        if head_fix.locator("input").is_checked():
            break
        head_fix.click()
        settle(page)
    assert head_fix.locator("input").is_checked()
    page.get_by_role("button", name="Train the notebook and the fixed model").click()
    page.get_by_text("Runs so far").wait_for(timeout=120_000)
    settle(page)
    assert page.get_by_text("notebook with fixes", exact=True).count() >= 1
    page.get_by_role("heading", name="The notebook, as written").scroll_into_view_if_needed()
    shoot(page, "09-train-notebook-replay")

    page.get_by_role("button", name="Fit popularity").click()
    settle(page)
    page.get_by_role("button", name="Fit itemknn").click()
    page.locator('[data-testid="stSidebar"]').get_by_text("itemknn").wait_for(timeout=30_000)
    settle(page)

    open_page(page, "Recommend")
    page.get_by_text("Found in top 20").wait_for()
    page.get_by_role("heading", name="Two models, one playlist").wait_for()
    page.get_by_text("In both lists", exact=True).wait_for()
    assert page.get_by_text(re.compile(r"Held out found by ")).count() == 2
    assert page.locator('[data-testid="stDataFrame"]').count() >= 4  # seeds, the list, and the two side by side
    shoot(page, "10-recommend-reasons-side-by-side")

    with page.expect_download() as csv_download:
        page.get_by_role("button", name="Recommendations as CSV").click()
    csv_path = tmp_path / csv_download.value.suggested_filename
    csv_download.value.save_as(csv_path)
    header = csv_path.read_text().splitlines()[0].split(",")
    assert csv_path.suffix == ".csv" and {"rank", "track", "artist", "reason", "uri"} <= set(header)
    assert len(csv_path.read_text().splitlines()) == 21

    with page.expect_download() as slice_download:
        page.get_by_role("button", name="Playlist as MPD JSON").click()
    slice_path = tmp_path / f"mpd.slice.{slice_download.value.suggested_filename}"
    slice_download.value.save_as(slice_path)
    playlist = read_slice(slice_path.read_bytes(), slice_path.name).playlists[0]
    assert len(playlist.tracks) > 20
    corpus, report = load_corpus([slice_path])
    assert corpus.n_playlists == 1 and not report.errors

    assert page.locator('[data-testid="stException"]').count() == 0
    assert not errors, errors
    page.close()
