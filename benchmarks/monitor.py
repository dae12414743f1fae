"""Run a command and sample the resident memory of its whole process tree (psutil)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import threading
import time

import psutil


def run_measured(command: list[str], interval: float = 0.2, timeout: float | None = None) -> dict:
    """Run `command`; return wall seconds, CPU seconds, peak memory of the process tree (PSS summed
    over its processes, so pages forked workers share count once) and of its largest process
    (RSS), sampled every `interval` s, and the JSON the command printed last on stdout (if any)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    peak = {"tree": 0, "largest": 0}
    done = threading.Event()

    def sample() -> None:
        parent = psutil.Process(process.pid)
        while not done.is_set():
            try:
                processes = [parent, *parent.children(recursive=True)]
                sizes, shares = [], []
                for p in processes:
                    try:
                        info = p.memory_full_info()  # pss: shared (forked) pages counted once
                        sizes.append(info.rss)
                        shares.append(info.pss)
                    except psutil.Error:
                        pass
                peak["tree"] = max(peak["tree"], sum(shares))
                peak["largest"] = max(peak["largest"], max(sizes, default=0))
            except psutil.Error:
                pass
            done.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        out, _ = process.communicate(timeout=timeout)
    finally:
        done.set()
        thread.join()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = None
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            result = json.loads(line)
            break
    return {
        "returncode": process.returncode,
        "wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "peak_pss_tree_gib": peak["tree"] / 2**30,
        "peak_rss_largest_gib": peak["largest"] / 2**30,
        "result": result,
    }


if __name__ == "__main__":
    print(json.dumps(run_measured(sys.argv[1:]), indent=2))
