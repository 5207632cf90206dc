#!/usr/bin/env python3
"""The same training step as `gdl-lab bench`, in PyTorch eager on the CPU.

Net (the seed's Simple3DModel / Target3DModel, or gdl-lab's 3-level U-Net), the mixed loss with
both terms computed every step (0.5 x BCE-with-logits on the one-hot target + 0.5 x GDL with 1/G
weights, MONAI's absent-class rule), global-norm clipping at 1, Adam. The input is a seeded
random volume with a 4-class label map of the same size, like gdl-lab's bench. Prints one JSON
line: {"median_step_s", "first_step_s", "model", "size", "threads", "parameters", "lambda",
"warmup_steps", "torch", ...}. The untimed warm-up steps (2), λ = 0.5 and the thread count match
`gdl-lab bench` (pass the same --threads to both; `bench/compare.py` does).
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def simple(classes):
    return nn.Sequential(
        nn.Conv3d(1, 8, 3, padding=1), nn.ReLU(),
        nn.Conv3d(8, 16, 3, padding=1), nn.ReLU(),
        nn.Conv3d(16, classes, 1))


def target(classes):
    return nn.Sequential(
        nn.Conv3d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv3d(16, 32, 3, padding=1), nn.ReLU(),
        nn.Conv3d(32, 64, 3, padding=1), nn.ReLU(),
        nn.Conv3d(64, classes, 1))


class Block(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 3, stride=stride, padding=1)
        self.norm = nn.InstanceNorm3d(cout, affine=True)

    def forward(self, x):
        return F.leaky_relu(self.norm(self.conv(x)), 0.01)


class UNet(nn.Module):
    """gdl-lab's UNet3d (src/model/unet.rs), block for block: 8 -> 16 -> 32 channels,
    strided-conv down, nearest up + conv, skip connections by concatenation."""

    def __init__(self, classes, c1=8):
        super().__init__()
        c2, c3 = 2 * c1, 4 * c1
        self.encode1 = nn.Sequential(Block(1, c1), Block(c1, c1))
        self.down1 = Block(c1, c2, 2)
        self.encode2 = Block(c2, c2)
        self.down2 = Block(c2, c3, 2)
        self.bottom = Block(c3, c3)
        self.up2 = Block(c3, c2)
        self.decode2 = Block(2 * c2, c2)
        self.up1 = Block(c2, c1)
        self.decode1 = Block(2 * c1, c1)
        self.head = nn.Conv3d(c1, classes, 1)

    def forward(self, x):
        skip1 = self.encode1(x)
        skip2 = self.encode2(self.down1(skip1))
        bottom = self.bottom(self.down2(skip2))
        up = self.up2(F.interpolate(bottom, scale_factor=2, mode="nearest"))
        decoded = self.decode2(torch.cat([up, skip2], 1))
        up = self.up1(F.interpolate(decoded, scale_factor=2, mode="nearest"))
        decoded = self.decode1(torch.cat([up, skip1], 1))
        return self.head(decoded)


def gdl(logits, onehot, eps=1e-5):
    p = logits.softmax(1)
    dims = (2, 3, 4)
    i = (p * onehot).sum(dims)
    g = onehot.sum(dims)
    ps = p.sum(dims)
    w = 1.0 / g
    inf = torch.isinf(w)
    w = torch.where(inf, torch.zeros_like(w), w)
    w = torch.where(inf, w.max(1, keepdim=True).values.expand_as(w), w)
    return (1 - (2 * (w * i).sum(1) + eps) / ((w * (ps + g)).sum(1) + eps)).mean()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="target", choices=["simple", "target", "unet"])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first, as gdl-lab bench")
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="0: torch's default")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="let cuDNN time its convolution algorithms first (PyTorch at its best)")
    options = parser.parse_args()
    torch.backends.cudnn.benchmark = options.cudnn_benchmark
    if options.threads:
        torch.set_num_threads(options.threads)
    torch.manual_seed(42)
    device = torch.device(options.device)
    net = {"simple": simple, "target": target, "unet": UNet}[options.model](options.classes)
    net = net.to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    n = options.size
    image = torch.randn(1, 1, n, n, n, device=device)
    labels = torch.randint(0, options.classes, (1, n, n, n), device=device)
    onehot = F.one_hot(labels, options.classes).permute(0, 4, 1, 2, 3).float()

    lam = 0.5  # gdl-lab bench's constant schedule: (1 - λ)·BCE + λ·GDL
    times = []
    for _ in range(options.warmup + options.steps):
        started = time.perf_counter()
        optimiser.zero_grad()
        logits = net(image)
        loss = (1 - lam) * F.binary_cross_entropy_with_logits(logits, onehot) + lam * gdl(
            logits, onehot)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimiser.step()
        loss.item()  # the readback gdl-lab does every step
        times.append(time.perf_counter() - started)
    print(json.dumps({
        "median_step_s": statistics.median(times[options.warmup:]),
        "first_step_s": times[0],
        "model": options.model,
        "size": n,
        "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in net.parameters()),
        "lambda": lam,
        "warmup_steps": options.warmup,
        "torch": torch.__version__,
        "device": options.device,
        "cudnn_benchmark": options.cudnn_benchmark,
    }))


if __name__ == "__main__":
    main()
