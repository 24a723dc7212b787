"""ncempy peer for bench-formats: reads DM3/DM4 files with ncempy and reports the median time.

Usage: formats_ncempy.py REPEATS FILE...   Prints one JSON object per file:
{"file": ..., "median_s": ..., "shape": [...], "dtype": ..., "sum": ...}
ncempy maps the file and returns a view of the mapping, so the timed work ends with a copy into
an array the caller owns (what hrtem's readFrame returns); the sum is outside the timing.
"""
import json
import statistics
import sys
import time

import numpy as np
from ncempy.io import dm


def main():
    repeats = int(sys.argv[1])
    for path in sys.argv[2:]:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            with dm.fileDM(path) as f:
                data = np.array(f.getDataset(0)["data"], copy=True)
            times.append(time.perf_counter() - start)
            total = float(data.sum(dtype=np.float64))
        print(json.dumps({"file": path, "median_s": statistics.median(times), "shape": list(data.shape),
                          "dtype": str(data.dtype), "sum": total}), flush=True)


if __name__ == "__main__":
    main()
