#!/usr/bin/env python3
"""Sums CubeCL's per-kernel GPU times from a `gdl-lab bench` run's stderr, taken with
`CUBECL_DEBUG_OPTION=profile CUBECL_DEBUG_LOG=stderr`, over the timed steps (the lines after the
last warm-up step), and prints a Markdown table: time per step by kind of kernel, then the
slowest kernels by name.

    bench/profile_summary.py LOG [--title TEXT] [--top 12] [--brief]

With --brief, one line: GPU milliseconds and kernel launches per step.

CubeCL logs each kernel as `| <duration> | <kernel name>` when it has been timed; the logger is
asynchronous, so a few kernels of one step may be logged after the next step's line: the sums
are over all timed steps, divided by their number.
"""
import argparse
import re
from collections import defaultdict

LINE = re.compile(r"^\| ([0-9.]+)(ns|µs|us|ms|s)\s*\| (.+)$")
SCALE = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}
# Checked in order: the first pattern found in a kernel's name gives its kind.
KINDS = [
    ("convolution (gdl-lab's tiled, burn's direct / transposed kernels)", ("conv",)),
    ("matmul", ("matmul", "gemm")),
    ("reduction (sum, mean, max, norms)", ("reduce", "sum", "mean", "argmax", "max", "norm")),
    ("copy / layout (slice, cat, pad, contiguous)", ("slice", "copy", "contiguous", "cat", "pad",
                                                     "gather", "scatter", "repeat", "permute")),
    ("fused element-wise (activations, loss, Adam)", ("fuse", "elemwise", "elem_wise", "trace")),
]


def kind_of(name):
    lowered = name.lower()
    for kind, patterns in KINDS:
        if any(pattern in lowered for pattern in patterns):
            return kind
    return "other"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("log")
    parser.add_argument("--title", default="")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--brief", action="store_true",
                        help="print only `<GPU ms per step> <launches per step>`")
    options = parser.parse_args()
    lines = open(options.log, encoding="utf-8", errors="replace").read().splitlines()
    last_warmup = max((i for i, l in enumerate(lines) if l.startswith("warm-up step")), default=-1)
    timed = [l for l in lines[last_warmup + 1:] if l.startswith("timed")]
    steps = max(len(timed), 1)
    by_name = defaultdict(lambda: [0.0, 0])
    for line in lines[last_warmup + 1:]:
        match = LINE.match(line.strip())
        if match:
            value, unit, name = match.groups()
            entry = by_name[name.strip()]
            entry[0] += float(value) * SCALE[unit]
            entry[1] += 1
    if not by_name:
        print(f"{options.title}: no profiled kernels in {options.log}")
        return
    total = sum(ms for ms, _ in by_name.values())
    launches = sum(count for _, count in by_name.values())
    if options.brief:
        print(f"{total / steps:.2f} {launches / steps:.0f}")
        return
    by_kind = defaultdict(lambda: [0.0, 0])
    for name, (ms, count) in by_name.items():
        by_kind[kind_of(name)][0] += ms
        by_kind[kind_of(name)][1] += count
    print(f"\n{options.title}: {total / steps:.2f} ms of GPU kernels and {launches / steps:.0f} "
          f"launches per step ({steps} timed steps; wall-clock lines: {', '.join(l.split(':', 1)[1].split('(')[0].strip() for l in timed)})")
    print("\n| kind | ms / step | share | launches / step |\n|---|---|---|---|")
    for kind, (ms, count) in sorted(by_kind.items(), key=lambda kv: -kv[1][0]):
        print(f"| {kind} | {ms / steps:.2f} | {100 * ms / total:.0f} % | {count / steps:.0f} |")
    print("\n| kernel | ms / step | launches / step |\n|---|---|---|")
    for name, (ms, count) in sorted(by_name.items(), key=lambda kv: -kv[1][0])[:options.top]:
        short = name if len(name) <= 100 else name[:97] + "…"
        print(f"| `{short}` | {ms / steps:.2f} | {count / steps:.0f} |")


if __name__ == "__main__":
    main()
