"""Run by torchrun in tests/test_distributed.py: train on the demo data, save this rank's weights."""

import os
import sys

import torch.distributed as dist

from songrec.ingest import load_corpus
from songrec.models.neural import NeuralRecommender

DDP_TRAIN_CONFIG = {
    "epochs": 4,
    "embedding_dim": 32,
    "hidden_dim": 64,
    "learning_rate": 0.01,
    "seed": 0,
    "val_share": 0.1,
}

if __name__ == "__main__":
    data, out, batch_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    corpus, _ = load_corpus([data])
    train, _ = corpus.split(0.2, seed=0)
    model = NeuralRecommender(**DDP_TRAIN_CONFIG, batch_size=batch_size).fit(train)
    model.save(os.path.join(out, f"rank{os.environ.get('RANK', '0')}.safetensors"))
    if dist.is_initialized():
        dist.destroy_process_group()
