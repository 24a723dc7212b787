"""PyTorch peer for bench-ensemble: tiled ensemble inference of the study's U-Net on a frame.

SIZE x SIZE Gaussian frame, MODELS U-Nets (torch_unet_bench.UNet, different seeds, eval mode),
non-overlapping TILE x TILE tiles in batches of BATCH (the last row and column zero-padded), per
pixel the mean particle probability over the models, the standard deviation, the binary entropy
(bits) of the mean and the mask (mean > 0.5): the work `hrtem segment --models` does. The
channels_last layout, the faster of PyTorch's two on this network (see bench-trainer).
torch.set_num_threads(THREADS); one warm-up on one tile, then the best of REPEATS runs.
Prints one JSON object: seconds, cpu_seconds, peak_rss_mib, torch.
Usage: torch_ensemble_bench.py SIZE MODELS TILE THREADS REPEATS BATCH
"""
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_unet_bench import UNet  # noqa: E402


def ensemble(models, frame, tile, size_of_batch):
    height, width = frame.shape
    rows, cols = -(-height // tile), -(-width // tile)
    padded = torch.zeros(rows * tile, cols * tile)
    padded[:height, :width] = frame
    total = torch.zeros(rows * tile, cols * tile)
    squares = torch.zeros(rows * tile, cols * tile)
    tiles = [(r, c) for r in range(rows) for c in range(cols)]
    with torch.no_grad():
        for model in models:
            for start in range(0, len(tiles), size_of_batch):
                group = tiles[start:start + size_of_batch]
                batch = torch.stack([padded[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] for r, c in group])[:, None]
                batch = batch.contiguous(memory_format=torch.channels_last)
                logits = model(batch)
                p = torch.sigmoid(logits[:, 1] - logits[:, 0])
                for i, (r, c) in enumerate(group):
                    total[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] += p[i]
                    squares[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] += p[i] * p[i]
    n = len(models)
    mean = (total / n)[:height, :width]
    std = (squares / n - (total / n) ** 2).clamp(min=0).sqrt()[:height, :width]
    q = mean.clamp(1e-7, 1 - 1e-7)
    entropy = -(q * torch.log2(q) + (1 - q) * torch.log2(1 - q))
    return mean, std, entropy, mean > 0.5


def main():
    size, count, tile, threads, repeats, batch = (int(a) for a in sys.argv[1:7])
    torch.set_num_threads(threads)
    models = []
    for seed in range(count):
        torch.manual_seed(1 + seed)
        models.append(UNet().eval().to(memory_format=torch.channels_last))
    torch.manual_seed(11)
    frame = torch.randn(size, size)
    ensemble(models, frame[:tile, :tile], tile, batch)
    best, best_cpu = float("inf"), 0.0
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        ensemble(models, frame, tile, batch)
        wall = time.perf_counter() - start
        if wall < best:
            best, best_cpu = wall, time.process_time() - cpu
    print(json.dumps({"seconds": best, "cpu_seconds": best_cpu, "torch": torch.__version__,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
