"""Training under torchrun: 2 CPU processes with gloo on 127.0.0.1 end with the same weights,
and a model as good as one trained in a single process on the same data."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from songrec.checkpoint import load_checkpoint
from songrec.ingest import load_corpus
from songrec.metrics import evaluate_model
from songrec.models.neural import NeuralRecommender
from songrec.protocol import make_cases
from songrec.synthetic import write_demo

WORKER = Path(__file__).with_name("ddp_worker.py")
BATCH = 64


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_match_single_process(tmp_path):
    data = tmp_path / "demo"
    write_demo(data, 800, seed=3)
    out = tmp_path / "ddp"
    out.mkdir()
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(WORKER),
        str(data),
        str(out),
        str(BATCH // 2),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    _, rank0, _ = load_checkpoint(out / "rank0.safetensors")
    _, rank1, _ = load_checkpoint(out / "rank1.safetensors")
    weights = [k for k in rank0 if k.startswith("model.net.")]
    assert weights, "no network weights in the checkpoint"
    for key in weights:
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)

    single_dir = tmp_path / "single"
    single_dir.mkdir()
    subprocess.run(
        [sys.executable, str(WORKER), str(data), str(single_dir), str(BATCH)],
        check=True,
        env={**env, "WORLD_SIZE": "1"},
        timeout=600,
    )
    corpus, _ = load_corpus([data])
    _, test = corpus.split(0.2, seed=0)
    cases = make_cases(test, seed=0)
    distributed = NeuralRecommender.load(out / "rank0.safetensors")
    single = NeuralRecommender.load(single_dir / "rank0.safetensors")
    ddp_score = evaluate_model(distributed, cases, corpus.track_artist).overall.r_precision
    single_score = evaluate_model(single, cases, corpus.track_artist).overall.r_precision
    assert ddp_score >= 0.85 * single_score, (ddp_score, single_score)
