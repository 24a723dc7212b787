"""RosettaSciIO peer for MRC, TIA SER and EMD files (tests and bench-formats).

Usage:
  formats_rosettasciio.py describe FILE...     one JSON line per signal: file, index, title,
                                               shape, dtype, sha256 of the little-endian C-order
                                               pixels, axes (scale, units)
  formats_rosettasciio.py time REPEATS FILE... one JSON line per file: median seconds to read
                                               the first signal into an array the caller owns
"""
import hashlib
import json
import statistics
import sys
import time

import numpy as np


def load(path):
    lower = path.lower()
    if lower.endswith(".mrc") or lower.endswith(".mrcs"):
        from rsciio.mrc import file_reader
    elif lower.endswith(".ser") or lower.endswith(".emi"):
        from rsciio.tia import file_reader
    elif lower.endswith(".emd"):
        from rsciio.emd import file_reader
    else:
        raise SystemExit(f"unknown extension: {path}")
    return file_reader(path)


def describe(paths):
    for path in paths:
        for index, signal in enumerate(load(path)):
            data = np.asarray(signal["data"])
            little = data.astype(data.dtype.newbyteorder("<"), copy=False)
            axes = [{"scale": float(a.get("scale", 1.0)), "units": a.get("units")} for a in signal["axes"]]
            title = signal.get("metadata", {}).get("General", {}).get("title")
            print(json.dumps({"file": path, "index": index, "title": title, "shape": list(data.shape),
                              "dtype": str(data.dtype), "axes": axes,
                              "sha256": hashlib.sha256(np.ascontiguousarray(little).tobytes()).hexdigest()}), flush=True)


def timed(repeats, paths):
    for path in paths:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            data = np.array(load(path)[0]["data"], copy=True)
            times.append(time.perf_counter() - start)
        print(json.dumps({"file": path, "median_s": statistics.median(times), "shape": list(data.shape),
                          "dtype": str(data.dtype), "sum": float(data.sum(dtype=np.float64))}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "describe":
        describe(sys.argv[2:])
    else:
        timed(int(sys.argv[2]), sys.argv[3:])
