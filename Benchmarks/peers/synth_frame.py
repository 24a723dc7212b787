"""NumPy/SciPy peer of hrtem's synthetic HRTEM frame generator (Sources/Synthesis).

The same image formation, written the way a NumPy user would: non-overlapping particles by
rejection sampling, fringes and thickness evaluated with vectorized numpy over each particle's
bounding box, the amorphous texture as a difference of scipy.ndimage Gaussian filters of white
noise, NumPy's Poisson sampler, a quadratic illumination. Not bit-identical to hrtem (different
random streams and Gaussian filters); equivalent in work per pixel. Prints one JSON line:
{"size": N, "runs": R, "median_ms": ..., "particles": ...}.

Usage: python3 synth_frame.py [--size 1024] [--runs 7]
"""
import argparse
import json
import math
import time

import numpy as np
from scipy import ndimage

FRINGES_AU = [(0.2355, math.radians(54.7356), 1.0), (0.2355, -math.radians(54.7356), 1.0), (0.2039, 0.0, 0.55)]


def synth_frame(size, pixel_scale=0.02, dose=423.0, particle_nm=5.0, z=79.0, gain=8.0, offset=100.0,
                coverage=0.2, texture_contrast=0.05, band=(0.06, 0.18), seed=0):
    rng = np.random.default_rng(seed)
    h = w = size
    radius = particle_nm / 2 / pixel_scale
    target = max(1, round(coverage * h * w / (math.pi * radius * radius)))
    gap = max(2.0, 0.3 / pixel_scale)
    particles = []
    attempts = 0
    while len(particles) < target and attempts < 200 * target:
        attempts += 1
        r = radius * max(0.5, 1 + 0.1 * float(np.clip(rng.standard_normal(), -2.5, 2.5)))
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        if any((p[0] - cy) ** 2 + (p[1] - cx) ** 2 < (p[2] + r + gap) ** 2 for p in particles):
            continue
        particles.append((cy, cx, r, rng.uniform(0, 2 * math.pi)))

    rel_z = (z / 79) ** 1.5
    mass_length = 12.0 / rel_z
    trans = np.ones((h, w), np.float64)
    label = np.zeros((h, w), np.uint8)
    for cy, cx, r, angle in particles:
        r0, r1 = max(0, int(cy - r - 1)), min(h, int(cy + r + 2))
        c0, c1 = max(0, int(cx - r - 1)), min(w, int(cx + r + 2))
        if r0 >= r1 or c0 >= c1:
            continue
        dy = (np.arange(r0, r1) + 0.5 - cy)[:, None]
        dx = (np.arange(c0, c1) + 0.5 - cx)[None, :]
        s = (dx * dx + dy * dy) / (r * r)
        inside = s < 1
        t = 2 * r * pixel_scale * np.sqrt(np.clip(1 - s, 0, None))
        fringe = np.zeros_like(s)
        total = sum(f[2] for f in FRINGES_AU)
        for spacing, a, weight in FRINGES_AU:
            k = 2 * math.pi * pixel_scale / spacing
            fringe += weight / total * np.cos(k * math.cos(a + angle) * dx + k * math.sin(a + angle) * dy)
        amp = 0.3 * (1 - np.exp(-rel_z * t / 2))
        factor = np.exp(-t / mass_length) * (1 + amp * fringe)
        trans[r0:r1, c0:c1] = np.where(inside, factor, trans[r0:r1, c0:c1])
        label[r0:r1, c0:c1] |= inside.astype(np.uint8)

    noise = rng.uniform(-0.5, 0.5, (h, w)).astype(np.float32)
    tex = ndimage.gaussian_filter(noise, band[0] / pixel_scale, mode="reflect") \
        - ndimage.gaussian_filter(noise, band[1] / pixel_scale, mode="reflect")
    tex = (tex - tex.mean()) / tex.std()

    u = ((np.arange(h) + 0.5) / h)[:, None]
    v = ((np.arange(w) + 0.5) / w)[None, :]
    ms = lambda c: 1 / 3 - c + c * c
    illum = 1 + 0.03 * (u - 0.5) - 0.02 * (v - 0.5) - 0.3 * ((u - 0.45) ** 2 + (v - 0.55) ** 2 - ms(0.45) - ms(0.55))

    n0 = dose * (pixel_scale * 10) ** 2
    expected = np.clip(n0 * illum * trans * (1 + texture_contrast * tex), 0, None)
    counts = (gain * rng.poisson(expected) + offset).astype(np.float32)
    hits = rng.poisson(8 * h * w / 1e6)
    for _ in range(hits):
        r, c = rng.integers(1, h - 1), rng.integers(1, w - 1)
        counts[r, c] = max(counts[r, c], 1.5 * (offset + gain * n0 * illum.max())) + rng.uniform(2000, 10000)
    return counts, label, len(particles)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    times = []
    particles = 0
    for run in range(args.runs):
        start = time.perf_counter()
        _, _, particles = synth_frame(args.size, seed=run)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    print(json.dumps({"size": args.size, "runs": args.runs, "median_ms": times[len(times) // 2], "particles": particles}))


if __name__ == "__main__":
    main()
