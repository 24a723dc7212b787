"""PyTorch peer for bench-trainer: the study's residual U-Net on the CPU.

Times a training step (forward, backward, Adam) per image at 512x512 batch 8 and 256x256
batch 32, and inference per image at 512x512 (batch 8), with torch.set_num_threads(THREADS),
in the default (contiguous NCHW) and channels_last memory layouts. Prints one JSON object.
Usage: torch_unet_bench.py THREADS REPEATS
"""
import json
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class ResidualBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv_add = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.conv_add(x))


class UNet(nn.Module):
    def __init__(self, widths=(4, 8, 16, 32), bottleneck=64):
        super().__init__()
        self.downs = nn.ModuleList()
        c = 1
        for w in widths:
            self.downs.append(ResidualBlock(c, w))
            c = w
        self.bottleneck = ResidualBlock(c, bottleneck)
        c = bottleneck
        self.ups = nn.ModuleList()
        for w in reversed(widths):
            self.ups.append(ResidualBlock(w + c, w))
            c = w
        self.final_conv = nn.Conv2d(c, 2, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        skips = []
        for block in self.downs:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for block, skip in zip(self.ups, reversed(skips)):
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = block(torch.cat([skip, x], dim=1))
        return self.final_conv(x)


def timed(fn, repeats):
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    results = {"torch": torch.__version__, "threads": threads}
    for layout in ("default", "channels_last"):
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        model = UNet().to(memory_format=fmt)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        entry = {}
        for size, batch in ((512, 8), (256, 32)):
            x = torch.randn(batch, 1, size, size).to(memory_format=fmt)
            y = (torch.rand(batch, size, size) > 0.7).long()

            def step():
                model.train()
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                optimizer.step()

            entry[f"train_{size}_b{batch}_ms_per_image"] = timed(step, repeats) * 1000 / batch
        x = torch.randn(8, 1, 512, 512).to(memory_format=fmt)

        def infer():
            model.eval()
            with torch.no_grad():
                model(x)

        entry["infer_512_ms_per_image"] = timed(infer, repeats) * 1000 / 8
        results[layout] = entry
    results["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(results))


if __name__ == "__main__":
    main()
