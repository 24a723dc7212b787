#!/usr/bin/env python3
"""Independent NumPy / scikit-image implementation of the study's per-frame preprocessing.

This is the peer hrtem's Preprocessing module is checked against (Tests/PreprocessingTests)
and timed against (Benchmarks/preprocessing). It follows the study's published protocol the
way the study's notebooks do it: scikit-image `rescale(img, 0.25)` for the fit, the nine
Bernstein basis images downscaled the same way, numpy `lstsq` in float64, numpy statistics.

Where the study leaves an arithmetic order open, this script fixes one and hrtem follows it:
  * the median is the mean (in float64) of the two middle values of the float32 frame;
  * the outlier test is `float64(pixel) > median + threshold`;
  * the 8-neighbour mean is a float64 sum in row-major neighbour order, divided by 8, stored
    as float32;
  * a border outlier gets the mean of the whole frame at that moment (exact sum, math.fsum),
    stored as float32;
  * the frame is converted to float64 before the flat-field downscale.

Commands:
  parity FRAME.npy LABEL.npy OUTDIR [--patch P] [--stride S] [--min-particle-pixels M]
         [--threshold T] [--iterations I] [--seed S] [--shuffle-count N] [--folds K]
      writes OUTDIR/xray.npy (float32), background.npy (float64, full resolution),
      downscaled.npy (float64), standardize.npy / normalize.npy / histogram.npy (float64),
      result.json (coefficients, kept patches, shuffle, folds, x-ray counts).
  shuffle N SEED          prints the legacy-NumPy permutation of range(N) as JSON.
  bench SIZE RUNS         times the full per-frame chain on a seeded synthetic frame; prints
                          one JSON line with the median CPU seconds (and wall seconds).
"""
import json
import math
import sys
import time

import numpy as np
from skimage.transform import rescale

STUDY_FOLD_SEEDS = [962, 1662, 621, 72115, 45521]


def remove_xrays(img, threshold=1500.0, max_passes=2):
    """In place on a float32 frame; returns the number of outliers fixed per pass."""
    img[img < 0] = 0
    height, width = img.shape
    counts = []
    offsets = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]
    for _ in range(max_passes):
        flat = img.ravel()
        n = flat.size
        if n % 2 == 0:
            part = np.partition(flat, [n // 2 - 1, n // 2])
            median = (float(part[n // 2 - 1]) + float(part[n // 2])) / 2.0
        else:
            median = float(np.partition(flat, n // 2)[n // 2])
        limit = median + threshold
        outliers = np.flatnonzero(flat.astype(np.float64) > limit)
        if outliers.size == 0:
            break
        # brightest first; equal values in raster order
        order = np.argsort(-flat[outliers].astype(np.float64), kind="stable")
        for index in outliers[order]:
            r, c = divmod(int(index), width)
            if r == 0 or c == 0 or r == height - 1 or c == width - 1:
                img[r, c] = np.float32(math.fsum(img.ravel().astype(np.float64)) / n)
            else:
                s = 0.0
                for dr, dc in offsets:
                    s += float(img[r + dr, c + dc])
                img[r, c] = np.float32(s / 8.0)
        counts.append(int(outliers.size))
    return counts


def bernstein(t):
    return [(1 - t) ** 2, 2 * t * (1 - t), t ** 2]


def basis_images(height, width):
    u = np.linspace(0, 1, height)
    v = np.linspace(0, 1, width)
    bu, bv = bernstein(u), bernstein(v)
    return [np.outer(bu[i], bv[j]) for i in range(3) for j in range(3)]


def fit_flat_field(img, iterations=2, scale=0.25):
    # float64 before the downscale: scikit-image keeps float32 input in float32, which would move
    # the rescaled values by ~1e-6 for no reason the study cared about
    small = rescale(img.astype(np.float64), scale, anti_aliasing=True, order=1)
    basis = basis_images(*img.shape)
    small_basis = [rescale(b, scale, anti_aliasing=True, order=1) for b in basis]
    x = np.stack([b.ravel() for b in small_basis], axis=1).astype(np.float64)
    y = small.ravel().astype(np.float64)
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    for _ in range(iterations - 1):
        r = y - x @ coef
        w = np.exp(-1.5 * r ** 2 / np.mean(r ** 2))
        coef = np.linalg.lstsq(x * w[:, None], y * w, rcond=None)[0]
    background = np.zeros(img.shape, dtype=np.float64)
    for k in range(9):
        background += coef[k] * basis[k]
    return coef, background, small.astype(np.float64)


def lerp_percentile(a, q):
    return float(np.percentile(a, q))  # numpy's default 'linear' method


def rescalings(q):
    out = {}
    out["standardize"] = (q - q.mean()) / q.std()
    out["normalize"] = (q - q.min()) / (q.max() - q.min())
    lo, hi = lerp_percentile(q, 1), lerp_percentile(q, 99)
    out["histogram"] = np.clip((q - lo) / (hi - lo), 0, 1)
    return out


def tiles(height, width, patch, stride):
    return [(r, c) for r in range(0, height - patch + 1, stride) for c in range(0, width - patch + 1, stride)]


def legacy_shuffle(n, seed):
    np.random.seed(seed)
    index = np.arange(n)
    np.random.shuffle(index)
    return index.tolist()


def study_folds(n, k=5):
    """The study's rule: array_split into k contiguous blocks; of the rest, the first 12.5%
    after the test block is validation (for the last fold, the last 12.5% before it)."""
    blocks = np.array_split(np.arange(n), k)
    folds = []
    for i, test in enumerate(blocks):
        rest = np.setdiff1d(np.arange(n), test)
        nval = int(0.125 * len(rest))
        if i < k - 1:
            start = int(test[-1]) + 1 if len(test) else 0
            validation = np.arange(start, start + nval)
        else:
            start = int(test[0]) if len(test) else n
            validation = np.arange(start - nval, start)
        train = np.setdiff1d(rest, validation)
        seed = STUDY_FOLD_SEEDS[i] if i < len(STUDY_FOLD_SEEDS) else None
        folds.append({"fold": i, "seed": seed, "train": train.tolist(),
                      "validation": validation.tolist(), "test": test.tolist()})
    return folds


def option(args, name, default, kind):
    if name in args:
        return kind(args[args.index(name) + 1])
    return default


def parity(args):
    frame_path, label_path, outdir = args[0], args[1], args[2]
    patch = option(args, "--patch", 512, int)
    stride = option(args, "--stride", patch, int)
    min_pixels = option(args, "--min-particle-pixels", 400, int)
    threshold = option(args, "--threshold", 1500.0, float)
    iterations = option(args, "--iterations", 2, int)
    seed = option(args, "--seed", 34522, int)
    shuffle_count = option(args, "--shuffle-count", 14, int)
    k = option(args, "--folds", 5, int)

    img = np.load(frame_path).astype(np.float32)
    label = np.load(label_path)
    counts = remove_xrays(img, threshold, 2)
    np.save(f"{outdir}/xray.npy", img)
    coef, background, small = fit_flat_field(img, iterations)
    np.save(f"{outdir}/background.npy", background)
    np.save(f"{outdir}/downscaled.npy", small)
    q = img.astype(np.float64) / background
    for name, values in rescalings(q).items():
        np.save(f"{outdir}/{name}.npy", values)
    kept = []
    for r, c in tiles(*img.shape, patch, stride):
        pixels = int(np.count_nonzero(label[r:r + patch, c:c + patch]))
        if pixels > min_pixels:
            kept.append([r, c, pixels])
    result = {"xray_counts": counts, "coefficients": coef.tolist(), "kept": kept,
              "shuffle": legacy_shuffle(shuffle_count, seed),
              "folds_430": study_folds(430, k), "folds_355": study_folds(355, k),
              "folds_kept": study_folds(len(kept), k) if len(kept) >= k else []}
    with open(f"{outdir}/result.json", "w") as f:
        json.dump(result, f)


def synthetic_frame(size, seed):
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size] / size
    illumination = 1.0 + 0.3 * rows - 0.2 * cols + 0.25 * (rows - 0.5) ** 2
    img = (rng.poisson(2000 * illumination) + rng.normal(0, 5, (size, size))).astype(np.float32)
    hits = rng.integers(1, size - 1, (200, 2))
    img[hits[:, 0], hits[:, 1]] += 20000
    return img


def bench(args):
    size, runs = int(args[0]), int(args[1])
    raw = synthetic_frame(size, 7)
    times, walls = [], []
    for _ in range(runs):
        img = raw.copy()
        start = time.process_time()
        wall = time.perf_counter()
        remove_xrays(img)
        _, background, _ = fit_flat_field(img)
        q = img.astype(np.float64) / background
        z = ((q - q.mean()) / q.std()).astype(np.float32)
        patches = [z[r:r + 512, c:c + 512].copy() for r, c in tiles(size, size, 512, 512)]
        times.append(time.process_time() - start)
        walls.append(time.perf_counter() - wall)
        del patches
    times.sort()
    walls.sort()
    print(json.dumps({"size": size, "runs": runs, "median_seconds": times[len(times) // 2],
                      "median_wall_seconds": walls[len(walls) // 2], "all": times}))


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    command, args = sys.argv[1], sys.argv[2:]
    if command == "parity":
        parity(args)
    elif command == "shuffle":
        print(json.dumps(legacy_shuffle(int(args[0]), int(args[1]))))
    elif command == "bench":
        bench(args)
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
