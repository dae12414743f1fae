"""The hybrid at the MPD-sample size: fit time with the default settings, and single-playlist latency.

    python benchmarks/hybrid.py                      # ../shared/data/mpd-sample, default settings
    python benchmarks/hybrid.py --data DIR --queries 1000 --param candidates=300

Prints the fit's wall and CPU seconds with the time of each stage (members, cases, ranker rounds,
refit), then the latency of `recommend(seeds, title, 500)` one playlist at a time over challenge-like
cases (the 10 categories) cut from the corpus: median, p90, p99 and the slowest, in milliseconds.
The targets (issue 12): fit in at most 5 minutes on 2 CPU cores, p99 under 50 ms. On a machine
shared with other work the figures are pessimistic; the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from songrec.ingest import load_corpus  # noqa: E402
from songrec.models import make_model  # noqa: E402
from songrec.protocol import make_cases  # noqa: E402
from songrec.settings import coerce, parse_param  # noqa: E402

SAMPLE = (ROOT / "../shared/data/mpd-sample").resolve()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SAMPLE), help="MPD slices (default: the MPD sample)")
    parser.add_argument("--cache-dir", default=os.environ.get("SONGREC_CACHE_DIR"), help="corpus cache folder")
    parser.add_argument("--queries", type=int, default=1000, help="playlists timed one at a time")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="a hybrid setting")
    args = parser.parse_args()

    corpus, _ = load_corpus([args.data], cache_dir=args.cache_dir)
    model = make_model("hybrid")
    params = coerce(model.settings_classes, dict(parse_param(p) for p in args.param), "hybrid")
    model = make_model("hybrid", **params)
    print(f"data: {args.data}: {corpus.n_playlists:,} playlists, {corpus.n_tracks:,} tracks")
    print(f"settings: {model.config()}")
    print(f"machine: {os.cpu_count()} cores, load average {_load()} at the start")

    stages: dict[str, float] = {}
    last = [time.perf_counter(), ""]

    def on_progress(progress) -> None:
        stage = progress.label.split(":")[0]
        now = time.perf_counter()
        if last[1]:
            stages[last[1]] = stages.get(last[1], 0.0) + now - last[0]
        last[0], last[1] = now, stage

    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(corpus, callback=on_progress)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    report = model.report
    print(f"fit: {wall:.1f} s wall, {cpu:.1f} s CPU (all threads), load average {_load()} at the end")
    for stage, seconds in stages.items():
        print(f"  {stage:<28}{seconds:8.1f} s")
    rounds = " + ".join(map(str, report.best_iterations)) or "0"
    print(
        f"  ranker: {report.cases:,} cases, {report.rows:,} candidate rows, {rounds} rounds kept "
        f"({model.settings.objective}), "
        f"candidate recall {report.candidate_recall:.3f}, validation NDCG {report.valid_ndcg:.4f}"
    )

    cases = make_cases(corpus, seed=1, max_cases=args.queries)
    for case in cases[:20]:  # warm-up: first calls load LightGBM's and BLAS's code paths
        model.recommend(case.seeds, case.title, 500)
    times = []
    for case in cases:
        started = time.perf_counter()
        model.recommend(case.seeds, case.title, 500)
        times.append(time.perf_counter() - started)
    ms = np.asarray(times) * 1000
    print(
        f"latency, one playlist, 500 tracks ({len(ms)} playlists): median {np.median(ms):.1f} ms, "
        f"p90 {np.percentile(ms, 90):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, max {ms.max():.1f} ms "
        f"(load average {_load()})"
    )
    return 0


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "n/a"


if __name__ == "__main__":
    sys.exit(main())
