#!/usr/bin/env python3
"""Runs `gdl-lab bench` and bench/pytorch_step.py for each net and size, one after the other on
this machine, and prints a Markdown table of median step times with the ratios gdl-lab / PyTorch.

    bench/compare.py --gdl-lab path/to/gdl-lab [--models simple,target,unet] [--sizes 16,32,64]
                     [--backends flex,wgpu] [--torch-device cpu|cuda]
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def last_json(command, env=None):
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        return {"error": f"failed (exit {result.returncode}): {' '.join(result.stderr.split())[-200:]}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def steps_for(size):
    # Enough timed steps for a stable median without spending minutes on 64³.
    return {16: 10, 32: 6, 64: 3}.get(size, 3)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gdl-lab", required=True)
    parser.add_argument("--models", default="simple,target,unet")
    parser.add_argument("--sizes", default="16,32,64")
    parser.add_argument("--backends", default="flex,wgpu")
    parser.add_argument("--torch-device", default="cpu")
    options = parser.parse_args()
    backends = [b for b in options.backends.split(",") if b]
    header = ["net", "size"] + [f"gdl-lab {b} (s)" for b in backends] + [
        f"PyTorch {options.torch_device} (s)"] + [f"{b} / PyTorch" for b in backends]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    adapters = {}
    for model in options.models.split(","):
        for size in [int(s) for s in options.sizes.split(",")]:
            steps = steps_for(size)
            ours = {}
            for backend in backends:
                run = last_json([options.gdl_lab, "bench", "--model", model, "--size", str(size),
                                 "--steps", str(steps), "--backend", backend])
                ours[backend] = run
                if "adapter" in run:
                    adapters[backend] = run["adapter"]
            torch = last_json([os.path.join(HERE, "pytorch.sh"), "--model", model, "--size",
                               str(size), "--steps", str(steps), "--device", options.torch_device])
            reference = torch.get("median_step_s")

            def cell(run):
                return f"{run['median_step_s']:.4f}" if "median_step_s" in run else run["error"]

            def ratio(run):
                if "median_step_s" in run and reference:
                    return f"{run['median_step_s'] / reference:.2f}×"
                return "–"
            row = [model, f"{size}³"] + [cell(ours[b]) for b in backends] + [cell(torch)] + [
                ratio(ours[b]) for b in backends]
            print("| " + " | ".join(row) + " |", flush=True)
    for backend, adapter in adapters.items():
        print(f"\n{backend}: {adapter}")
    print(f"PyTorch: {torch.get('torch', '?')}, {torch.get('threads', '?')} threads", file=sys.stdout)


if __name__ == "__main__":
    main()
