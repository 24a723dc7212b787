"""PyTorch peer for bench-torch-import: torch.load of checkpoint files on one thread.

The study's files pickle whole modules whose classes lived in the training script's
__main__; unpickling needs classes of those names, so empty nn.Module subclasses stand in
(torch.load then restores each module's __dict__). Loads every FILE once as a warm-up, then
REPEATS times, and prints one JSON object: the best total wall time, that run's processor
time and the tensor count.
Usage: torch_load.py REPEATS FILE...
"""
import json
import sys
import time

import torch
import torch.nn as nn


class UNet(nn.Module):
    pass


class ResidualBlock(nn.Module):
    pass


def load_all(files):
    tensors = 0
    for name in files:
        model = torch.load(name, map_location="cpu", weights_only=False)
        state = model.state_dict() if isinstance(model, nn.Module) else model
        tensors += len(state)
    return tensors


def main():
    torch.set_num_threads(1)
    repeats, files = int(sys.argv[1]), sys.argv[2:]
    tensors = load_all(files)
    best, processor = float("inf"), 0.0
    for _ in range(repeats):
        start, processor_start = time.perf_counter(), time.process_time()
        load_all(files)
        wall = time.perf_counter() - start
        if wall < best:
            best, processor = wall, time.process_time() - processor_start
    print(json.dumps({"torch": torch.__version__, "files": len(files), "tensors": tensors, "seconds": best,
                      "processor": processor}))


if __name__ == "__main__":
    main()
