"""songrec benchmarks: `python benchmarks/run.py [--quick]` prints a table and writes RESULTS.md.

Every figure comes from a fresh process (benchmarks/tasks.py) watched by benchmarks/monitor.py
(wall time, CPU time, peak memory of the process tree), and every ratio is measured side by side
in the same run. Not part of the test suite: the full run takes about an hour on 2 cores and
needs the 1M-playlist set (generated into --data when missing: ~33 GB, ~12 minutes).

    python benchmarks/run.py                 # full: 1M playlists in /work/scratch/mpd1m
    python benchmarks/run.py --quick         # minutes: 20k generated playlists, fewer steps
    python benchmarks/run.py --only ingest,latency
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from monitor import run_measured  # noqa: E402

SECTIONS = ("ingest", "build", "train", "fit", "latency", "tsne", "app")
SAMPLE = (ROOT / "../shared/data/mpd-sample").resolve()
MARK_START, MARK_END = "<!-- results:start -->", "<!-- results:end -->"


def task(name: str, nice: bool = True, timeout: float | None = None, **arguments) -> dict:
    command = [sys.executable, str(ROOT / "benchmarks" / "tasks.py"), name, json.dumps(arguments)]
    if nice and hasattr(os, "nice") and os.nice(0) < 10:  # heavy jobs run at niceness 10 on a shared machine
        command = ["nice", "-n", str(10 - os.nice(0)), *command]
    measured = run_measured(command, timeout=timeout)
    if measured["returncode"] != 0 or measured["result"] is None:
        raise RuntimeError(f"benchmark task {name} {arguments} failed (exit {measured['returncode']})")
    return measured


def warm(files: list[Path]) -> None:
    """Read the files once so every reader after finds them in the page cache."""
    for path in files:
        with open(path, "rb") as handle:
            while handle.read(1 << 24):
                pass


def ensure_data(folder: Path, playlists: int, tracks: int | None = None) -> None:
    if folder.is_dir() and len(list(folder.glob("mpd.slice.*.json"))) >= -(-playlists // 1000):
        return
    print(f"generating {playlists:,} playlists into {folder} ...", file=sys.stderr, flush=True)
    from songrec.synthetic import write_demo

    write_demo(folder, playlists, seed=0, n_tracks=tracks)


# --------------------------------------------------------------------------- the sections


def bench_ingest(args, results: dict) -> None:
    from songrec.mpd import find_slice_files

    sets = [("generated full-format slices", args.data, args.ingest_files)]
    if SAMPLE.is_dir():
        sets.append(("real MPD sample (trimmed fields)", str(SAMPLE), None))
    rows = []
    for label, source, count in sets:
        files = find_slice_files([source])[: count or None]
        warm(files)
        notebook = task("ingest_notebook", source=source, count=count)
        one = task("ingest_songrec", source=source, count=count, workers=1)
        two = task("ingest_songrec", source=source, count=count, workers=2)
        base = notebook["result"]["mb_per_s"]
        for name, measured in (
            ("notebook: json.load + DataFrame", notebook),
            ("songrec, 1 process", one),
            ("songrec, 2 worker processes", two),
        ):
            r = measured["result"]
            rows.append(
                {
                    "data": label,
                    "reader": name,
                    "files": r["files"],
                    "mb": r["mb"],
                    "seconds": r["seconds"],
                    "mb_per_s": r["mb_per_s"],
                    "ratio": r["mb_per_s"] / base,
                    "peak_gib": measured["peak_pss_tree_gib"],
                    "entries": r["entries"],
                }
            )
        print_rows("ingest", rows[-3:])
    results["ingest"] = rows


def bench_build(args, results: dict) -> None:
    built = task("build", source=args.data)
    cache_dir = Path(args.cache)
    hit = task("cached", source=args.data, cache_dir=str(cache_dir))
    r = built["result"]
    results["build"] = {
        "playlists": r["playlists"],
        "tracks": r["tracks"],
        "entries": r["entries"],
        "artists": r["artists"],
        "seconds": r["seconds"],
        "wall_s": built["wall_s"],
        "cpu_s": built["cpu_s"],
        "peak_pss_tree_gib": built["peak_pss_tree_gib"],
        "peak_rss_largest_gib": built["peak_rss_largest_gib"],
        "cache_seconds": hit["result"]["seconds"],
        "cache_hit": hit["result"]["hit"],
        "cache_first_seconds": hit["result"]["first_seconds"],
        "cache_mb": sum(p.stat().st_size for p in cache_dir.rglob("*") if p.is_file()) / 1e6,
    }
    print_rows("build", [results["build"]])


def corpora(args) -> list[tuple[str, str]]:
    out = []
    if SAMPLE.is_dir():
        out.append(("real sample", str(SAMPLE)))
    if args.vocabulary:
        return out
    if args.quick:
        out.append(("generated (quick)", args.data))
    else:
        out.append(
            ("generated 1M" if args.playlists == 1_000_000 else f"generated {args.playlists // 1000}k", args.data)
        )
    return out


PREVIOUS_DEFAULTS = {
    "members": 3,
    "negatives": 0,
    "batch_size": 64,
    "learning_rate": 7e-3,
    "cpu_threads": 0,
    "distill": 0.0,
}
"""The neural defaults before issue 13 (three networks, full softmax, batches of 64, no ALS teacher): the
baseline row."""


def bench_train(args, results: dict) -> None:
    rows = []
    if not SAMPLE.is_dir():
        rows.append({"data": "real sample", "note": f"skipped: {SAMPLE} is absent"})
    # the defaults, one network with the full softmax (the notebook's loss), and the previous defaults
    variants = ({}, {"members": 1}, {"negatives": 0}, PREVIOUS_DEFAULTS)
    for label, source in corpora(args):
        for overrides in variants:
            _train_row(args, rows, label, source, overrides)
    if args.vocabulary:  # the full-size step without a generated corpus (tasks.train_vocabulary)
        for overrides in variants:
            steps = args.train_steps if overrides is not PREVIOUS_DEFAULTS else max(5, args.train_steps // 3)
            r = task("train_vocabulary", items=args.vocabulary, steps=steps, **overrides)["result"]
            label = f"Zipf playlists, {args.vocabulary:,}-track vocabulary"
            rows.append(
                {"data": label, **r, "settings": ", ".join(f"{k}={v}" for k, v in overrides.items()) or "defaults"}
            )
            print_rows("train", rows[-1:])
    results["train"] = rows


def bench_fit(args, results: dict) -> None:
    fits = []
    # what a user waits for: the defaults on the whole sample (submit) and on the app's demo data
    demo = Path(args.data).parent / "demo2000"
    ensure_data(demo, 2000)
    for label, source in [("real sample", str(SAMPLE))] * SAMPLE.is_dir() + [("demo data, 2,000 generated", str(demo))]:
        load = os.getloadavg()[0]
        measured = task("fit_time", nice=False, source=source, cache_dir=args.cache)
        fits.append(
            {
                "data": label,
                "load": load,
                "load_end": os.getloadavg()[0],
                **measured["result"],
                "peak_gib": measured["peak_pss_tree_gib"],
            }
        )
        print_rows("fit", fits[-1:])
    results["fit"] = fits


def _train_row(args, rows: list, label: str, source: str, overrides: dict) -> None:
    measured = task("train", source=source, cache_dir=args.cache, steps=args.train_steps, **overrides)
    r = measured["result"]
    rows.append(
        {
            "data": label,
            "playlists": r["playlists"],
            "tracks": r["tracks"],
            "vocabulary": r["vocabulary"],
            "playlists_per_s": r["playlists_per_s"],
            "playlists_per_cpu_s": r["playlists_per_cpu_s"],
            "seconds_per_step": r["seconds_per_step"],
            "setup_seconds": r["setup_seconds"],
            "batch_size": r["batch_size"],
            "torch_threads": r["torch_threads"],
            "peak_gib": measured["peak_pss_tree_gib"],
            "settings": ", ".join(f"{k}={v}" for k, v in overrides.items()) or "defaults",
        }
    )
    print_rows("train", rows[-1:])


def bench_latency(args, results: dict) -> None:
    from songrec.models import model_names

    chosen = args.models.split(",") if args.models else list(model_names())
    # with --models, the other models' rows of a resumed run stay
    rows = [r for r in results.get("latency", []) if r["model"] not in chosen] if args.models else []
    for label, source in corpora(args):
        large = label != "real sample"
        variants = [(model, {}) for model in chosen]
        if "neural" in chosen:  # the int8 table (served above 100,000 tracks) beside the default's exact scores
            variants += [("neural", {"serving": "int8"})]
        for model, params in variants:
            if model == "als" and large:
                params = {"iterations": 2}  # answer time does not depend on iterations; 15 would take an hour
            if model == "neural" and large:
                params = {**params, "init": "random"}  # nor on the start of the embeddings: no ALS fit first
            try:
                measured = task(
                    "latency", source=source, cache_dir=args.cache, model=model, params=params, queries=args.queries
                )
            except RuntimeError as exc:
                rows.append({"data": label, "model": model, "note": str(exc)})
                continue
            r = measured["result"]
            rows.append(
                {
                    "data": label,
                    "model": model,
                    "tracks": r["tracks"],
                    "p50_ms": r["p50_ms"],
                    "p99_ms": r["p99_ms"],
                    "mean_ms": r["mean_ms"],
                    "cpu_p50_ms": r["cpu_p50_ms"],
                    "cpu_p99_ms": r["cpu_p99_ms"],
                    "fit_seconds": r["fit_seconds"],
                    "peak_gib": measured["peak_pss_tree_gib"],
                    "queries": r["queries"],
                    "params": params,
                    **{
                        k: r[k]
                        for k in (
                            "neighbour_entries",
                            "max_neighbours",
                            "serving",
                            "recall_at_500",
                            "recall_at_500_min",
                            "recall_queries",
                        )
                        if k in r
                    },
                }
            )
            print_rows("latency", rows[-1:])
    if args.vocabulary and "neural" in chosen:  # the network's answer time at full size, no corpus
        for params in ({}, {"serving": "float32"}, {"members": 1}):
            r = task("latency_vocabulary", items=args.vocabulary, queries=args.queries, **params)["result"]
            rows.append(
                {
                    "data": f"default network, {args.vocabulary:,}-track vocabulary",
                    "tracks": args.vocabulary,
                    "fit_seconds": float("nan"),
                    "peak_gib": float("nan"),
                    "cpu_p50_ms": float("nan"),
                    "cpu_p99_ms": float("nan"),
                    **r,
                }
            )
            print_rows("latency", rows[-1:])
    labels = [label for label, _ in corpora(args)]
    order = {m: i for i, m in enumerate(model_names())}
    rows.sort(key=lambda r: (labels.index(r["data"]) if r["data"] in labels else 99, order.get(r["model"], 99)))
    results["latency"] = rows


TSNE_METHODS = ("one-thread", "songrec", "opentsne")
"""The former path, the current one, and openTSNE when it is installed (it is not a dependency)."""


def bench_tsne(args, results: dict) -> None:
    rows = []
    for points in args.tsne_points:
        for method in TSNE_METHODS:
            if method == "opentsne" and importlib.util.find_spec("openTSNE") is None:
                continue
            measured = task("tsne", points=points, method=method)["result"]
            rows.append({key: measured[key] for key in ("points", "dim", "method", "seconds", "trustworthiness")})
            print_rows("tsne", rows[-1:])
    results["tsne"] = rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _app_once(browser, demo_dir: Path) -> dict:
    port = _free_port()
    env = {**os.environ, "SONGREC_DEMO_DIR": str(demo_dir)}
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
    ]
    started = time.perf_counter()
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        health = None
        while time.perf_counter() - started < 120:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as reply:
                    if reply.status == 200:
                        health = time.perf_counter() - started
                        break
            except OSError:
                time.sleep(0.05)
        if health is None:
            raise RuntimeError("the app did not answer its health check within 120 s")
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/", wait_until="commit")
        page.get_by_text("Which playlists the models learn from").wait_for(timeout=300_000)
        rendered = time.perf_counter() - started
        page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=300_000)
        idle = time.perf_counter() - started
        page.close()
        return {"health_s": health, "first_page_s": rendered, "script_done_s": idle}
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


def bench_app(args, results: dict) -> None:
    if not (ROOT / "app.py").is_file():
        results["app"] = [{"note": "app.py does not exist yet"}]
        return
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as playwright:
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        browser = playwright.chromium.launch(executable_path=chromium) if chromium else playwright.chromium.launch()
        with tempfile.TemporaryDirectory() as scratch:
            demo = Path(scratch) / "demo"
            for label in ("first start (demo data generated)", "restart (demo data on disk)"):
                rows.append({"case": label, **_app_once(browser, demo)})
                print_rows("app", rows[-1:])
        browser.close()
    results["app"] = rows


# --------------------------------------------------------------------------- report


def print_rows(section: str, rows: list[dict]) -> None:
    for row in rows:
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in row.items() if k != "params")
        print(f"[{section}] {shown}", flush=True)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def machine() -> str:
    memory = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores, {memory:.0f} GiB RAM, {platform.platform()}, Python {platform.python_version()}"


def verdict(ok: bool, detail: str) -> str:
    return f"{'met' if ok else 'missed'} ({detail})"


def markdown(results: dict, command: str) -> str:
    lines = [
        f"Machine: {results['machine']}. A full run is `python benchmarks/run.py` (about an hour; `--quick` "
        "takes minutes); the exact command of each section is listed below.",
        "",
        "The machine may be shared (heavy jobs run at niceness 10 so other work goes first), so wall "
        "times are pessimistic; CPU seconds are given beside them where the difference matters. Each "
        "section's date and load average (1-minute, at its start and end):",
        "",
    ]
    for name, meta in results.get("sections", {}).items():
        lines.append(
            f"- {name}: {meta['date']}, load {meta['load_start']} -> {meta['load_end']}, `{meta.get('command', '')}`"
        )
    lines.append("")
    if "ingest" in results:
        lines += [
            "### 1. Ingest: the same slices, songrec's reader vs the notebook's path",
            "",
            "| data | reader | files | MB | seconds | MB/s | vs notebook | peak GiB |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in results["ingest"]:
            lines.append(
                f"| {r['data']} | {r['reader']} | {r['files']} | {r['mb']:,.0f} | {r['seconds']:.2f} | "
                f"{r['mb_per_s']:,.1f} | {r['ratio']:.1f}x | {r['peak_gib']:.2f} |"
            )
        single = [r for r in results["ingest"] if r["reader"] == "songrec, 1 process"]
        worst = min(r["ratio"] for r in single)
        target = verdict(worst >= 5, f"lowest {worst:.1f}x")
        lines += ["", f"Target >= 5x (one process against one process): {target}", ""]
    if "build" in results:
        b = results["build"]
        lines += [
            "### 2. Corpus build of the whole folder",
            "",
            "| playlists | tracks | entries | wall s | CPU s | peak GiB (tree, PSS) | peak GiB (largest process) "
            "| cached reload s | cache MB |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {b['playlists']:,} | {b['tracks']:,} | {b['entries']:,} | {b['seconds']:.0f} | {b['cpu_s']:.0f} | "
            f"{b['peak_pss_tree_gib']:.2f} | {b['peak_rss_largest_gib']:.2f} | {b['cache_seconds']:.1f} | "
            f"{b['cache_mb']:,.0f} |",
            "",
            f"Target <= 5 minutes: {verdict(b['seconds'] <= 300, format(b['seconds'], '.0f') + ' s')}; "
            f"target <= 6 GiB: {verdict(b['peak_pss_tree_gib'] <= 6, format(b['peak_pss_tree_gib'], '.2f') + ' GiB')}; "
            f"cache hit: {b['cache_hit']}",
            "",
        ]
    if "fit" in results:
        lines += [
            "### 3. Neural training: the defaults, and throughput",
            "",
            "Fitting the default model on every playlist (what `songrec submit --model neural` and the app's "
            "Train page wait for; per-epoch reports are what the live curves draw):",
            "",
            "| data | playlists | vocabulary | wall s | CPU s | epochs run | best epoch | epoch reports "
            "| torch threads | load |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in results["fit"]:
            lines.append(
                f"| {r['data']} | {r['playlists']:,} | {r['vocabulary']:,} | {r['seconds']:.1f} | "
                f"{r['cpu_seconds']:.1f} | {r['epochs_trained']} | {r['best_epoch']} | {r['epoch_reports']} | "
                f"{r['torch_threads']} | {r['load']:.1f} -> {r['load_end']:.1f} |"
            )
        targets = {"real sample": 90, "demo data, 2,000 generated": 20}
        checks = [
            f"{r['data']} <= {targets[r['data']]} s: "
            + verdict(r["seconds"] <= targets[r["data"]], f"{r['seconds']:.0f} s")
            for r in results["fit"]
            if r["data"] in targets
        ]
        lines += ["", "Targets: " + "; ".join(checks), ""]
    if "train" in results:
        lines += [
            "Throughput (CPU; steps timed after 3 warm-up steps, the per-epoch validation not included):",
            "",
            "| data | settings | playlists | tracks | vocabulary | playlists/s | playlists/CPU-s | s/step | batch "
            "| setup s | torch threads |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in results["train"]:
            if "note" in r:
                lines.append(f"| {r['data']} | {r['note']} | | | | | | | | | |")
                continue
            lines.append(
                f"| {r['data']} | {r.get('settings', 'defaults')} | {r['playlists']:,} | {r['tracks']:,} | "
                f"{r['vocabulary']:,} | "
                f"{r['playlists_per_s']:,.0f} | {r.get('playlists_per_cpu_s', float('nan')):,.0f} | "
                f"{r['seconds_per_step']:.3f} | {r['batch_size']} | "
                f"{r['setup_seconds']:.0f} | {r['torch_threads']} |"
            )
        large = [r for r in results["train"] if "note" not in r and r["data"] != "real sample"]
        new = [r for r in large if r.get("settings", "defaults") == "defaults"]
        old = [r for r in large if r.get("settings") == ", ".join(f"{k}={v}" for k, v in PREVIOUS_DEFAULTS.items())]
        if new and old:
            ratio = new[0]["playlists_per_s"] / old[0]["playlists_per_s"]
            lines += [
                "",
                f"Target >= 10x the previous defaults' throughput at {new[0]['vocabulary']:,} scored tracks: "
                + verdict(ratio >= 10, f"{ratio:.1f}x"),
            ]
        lines.append("")
    if "latency" in results:
        lines += [
            "### 4. Single-playlist recommendation latency (500 tracks, 0-100 seeds, one thread)",
            "",
            "| data | model | tracks | p50 ms | p99 ms | mean ms | CPU p50 ms | CPU p99 ms | fit s | peak GiB "
            "| notes |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in results["latency"]:
            if "note" in r:
                lines.append(f"| {r['data']} | {r['model']} | | | | | | | | | {r['note']} |")
                continue
            notes = []
            if r.get("params"):
                notes.append(_settings(r))
            if "max_neighbours" in r:
                notes.append(f"{r['max_neighbours']} neighbours/track, {r['neighbour_entries']:,} entries")
            if "recall_at_500" in r and r.get("serving") != "float32":
                notes.append(
                    f"{r['serving']} table: recall@500 {r['recall_at_500']:.4f} against exact float32 "
                    f"(min {r['recall_at_500_min']:.3f}, {r.get('recall_queries', r.get('queries'))} queries)"
                )
            lines.append(
                f"| {r['data']} | {r['model']} | {r['tracks']:,} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                f"{r['mean_ms']:.2f} | {r.get('cpu_p50_ms', float('nan')):.2f} | "
                f"{r.get('cpu_p99_ms', float('nan')):.2f} | {r['fit_seconds']:.0f} | {r['peak_gib']:.1f} | "
                f"{'; '.join(notes)} |"
            )
        big = [r for r in results["latency"] if "p99_ms" in r and r["tracks"] >= 300_000]
        if big:
            over = [
                f"{r['model']}{f' ({_settings(r)})' if r.get('params') else ''} {r['p99_ms']:.0f} ms"
                for r in big
                if r["p99_ms"] > 20
            ]
            lines += [
                "",
                f"Target p99 <= 20 ms at {big[0]['tracks']:,} tracks: "
                + verdict(not over, "over: " + ", ".join(over) if over else "every model"),
            ]
        lines.append("")
    if "tsne" in results:
        lines += [
            "### 5. t-SNE: the former one-thread path, songrec's (unit length, PCA to 50, 500 steps at angle 0.8, "
            "2 threads), openTSNE",
            "",
            "| points | dim | method | seconds | trustworthiness (cosine, 10 neighbours) |",
            "|---:|---:|---|---:|---:|",
        ]
        lines += [
            f"| {r['points']:,} | {r['dim']} | {r.get('method', 'one-thread')} | {r['seconds']:.1f} | "
            + (f"{r['trustworthiness']:.4f} |" if "trustworthiness" in r else "– |")
            for r in results["tsne"]
        ]
        lines.append("")
    if "app" in results:
        lines += [
            "### 6. App cold start (`streamlit run app.py --server.headless true --server.address 127.0.0.1`)",
            "",
            "| case | health endpoint s | first page rendered s | first script run done s |",
            "|---|---:|---:|---:|",
        ]
        for r in results["app"]:
            if "note" in r:
                lines.append(f"| {r['note']} | | | |")
            else:
                lines.append(
                    f"| {r['case']} | {r['health_s']:.1f} | {r['first_page_s']:.1f} | {r['script_done_s']:.1f} |"
                )
        lines.append("")
    return "\n".join(lines)


def _settings(row: dict) -> str:
    """A latency row's non-default settings, as key=value."""
    return ", ".join(f"{k}={v}" for k, v in row.get("params", {}).items())


def write_results(path: Path, body: str) -> None:
    text = path.read_text() if path.exists() else "# songrec benchmarks\n\n" + MARK_START + "\n" + MARK_END + "\n"
    if MARK_START not in text:
        text += "\n" + MARK_START + "\n" + MARK_END + "\n"
    head, rest = text.split(MARK_START, 1)
    _, tail = rest.split(MARK_END, 1)
    path.write_text(head + MARK_START + "\n" + body + "\n" + MARK_END + tail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20k generated playlists, fewer steps and queries")
    parser.add_argument("--data", help="folder of generated slices (default /work/scratch/mpd1m, quick: a temp folder)")
    parser.add_argument("--cache", help="corpus cache folder (default: beside --data)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {','.join(SECTIONS)}")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    parser.add_argument("--json", help="raw results (default benchmarks/results.json; quick: beside --data)")
    parser.add_argument("--resume", action="store_true", help="keep the other sections of a previous --json")
    parser.add_argument("--report", action="store_true", help="only rewrite RESULTS.md from a previous --json")
    parser.add_argument("--playlists", type=int, default=1_000_000, help="size of the generated set (not --quick)")
    parser.add_argument(
        "--tracks",
        type=int,
        help="catalogue size of the generated set (default: as many as "
        "the generator gives that many playlists; 2256372 gives a smaller set the full MPD's tracks)",
    )
    parser.add_argument(
        "--vocabulary",
        type=int,
        default=0,
        help="train and latency: measure the neural model "
        "at this many scored tracks on corpus-free Zipf playlists instead of the generated set (which "
        "is then neither generated nor read); 300000 is the full MPD's scored vocabulary",
    )
    parser.add_argument("--models", help="latency: only these models (comma-separated; with --resume the rest stay)")
    args = parser.parse_args(argv)
    playlists = 20_000 if args.quick else args.playlists
    scratch = Path(os.environ.get("SONGREC_BENCH_DIR", "/work/scratch" if Path("/work/scratch").is_dir() else "/tmp"))
    args.data = args.data or str(scratch / ("mpd-quick" if args.quick else "mpd1m"))
    args.cache = args.cache or str(Path(args.data).parent / "songrec-bench-cache")
    args.ingest_files = 3 if args.quick else 20
    args.train_steps = 5 if args.quick else 30
    args.queries = 60 if args.quick else 300
    args.tsne_points = [500, 1000] if args.quick else [2000, 5000]
    if not args.report and not args.vocabulary and set(args.only.split(",")) - {"tsne", "app"}:
        ensure_data(Path(args.data), playlists, None if args.quick else args.tracks)  # tsne and app need none

    previous = Path(
        args.json
        or (Path(args.data).parent / "results-quick.json" if args.quick else ROOT / "benchmarks" / "results.json")
    )
    fresh = {"machine": machine(), "quick": args.quick, "data": args.data, "sections": {}}
    results = json.loads(previous.read_text()) if (args.resume or args.report) and previous.exists() else fresh
    results.update({k: v for k, v in fresh.items() if k != "sections"})
    command = " ".join(["python benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])])
    functions = {
        "ingest": bench_ingest,
        "build": bench_build,
        "train": bench_train,
        "fit": bench_fit,
        "latency": bench_latency,
        "tsne": bench_tsne,
        "app": bench_app,
    }
    for section in [] if args.report else args.only.split(","):
        meta = {
            "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "load_start": f"{os.getloadavg()[0]:.1f}",
            "command": command,
        }
        started = time.perf_counter()
        functions[section](args, results)
        print(f"[{section}] done in {time.perf_counter() - started:.0f} s", flush=True)
        meta["load_end"] = f"{os.getloadavg()[0]:.1f}"
        results.setdefault("sections", {})[section] = meta
        previous.write_text(json.dumps(results, indent=2))
    body = markdown(results, command)
    print("\n" + body)
    if not args.quick:
        write_results(Path(args.out), body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
