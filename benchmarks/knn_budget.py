"""How much item-kNN loses when its co-occurrences are sampled to fit a work budget.

    python benchmarks/knn_budget.py [--playlists 100000] [--share 0.25]

Fits item-kNN exactly and with `max_products` at `share` of the exact work on the first
`--playlists` playlists of the generated set (a 95/5 split), and scores both on the same
held-out challenge cases (R-precision, NDCG). At the full 1M size the exact fit needs 7.4e9
multiply-adds (about 6 minutes on 2 cores); a budget of 2e9 (27%) fits in 2.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from songrec.ingest import load_corpus
from songrec.metrics import evaluate_model
from songrec.models import make_model
from songrec.protocol import make_cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="/work/scratch/mpd1m")
    parser.add_argument("--playlists", type=int, default=100_000)
    parser.add_argument("--share", type=float, default=0.25)
    parser.add_argument("--cases", type=int, default=1000)
    args = parser.parse_args()
    corpus, _ = load_corpus([args.data], max_files=args.playlists // 1000)
    train, test = corpus.split(0.05, seed=0)
    cases = make_cases(test, seed=0, max_cases=args.cases)
    lengths = np.diff(train.matrix().indptr).astype(np.float64)
    exact_work = float(lengths @ lengths)
    rows = []
    for label, budget in (("exact", 0), (f"budget {args.share:.0%}", int(exact_work * args.share))):
        started = time.perf_counter()
        model = make_model("itemknn", max_products=budget, max_entries=0).fit(train)
        fit = time.perf_counter() - started
        overall = evaluate_model(model, cases, train.track_artist).overall
        rows.append(
            {
                "fit": label,
                "max_products": budget,
                "fit_seconds": round(fit, 1),
                "r_precision": round(overall.r_precision, 4),
                "ndcg": round(overall.ndcg, 4),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print(
        json.dumps(
            {
                "playlists": train.n_playlists,
                "tracks": train.n_tracks,
                "exact_work": exact_work,
                "cases": len(cases),
                "rows": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
