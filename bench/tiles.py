#!/usr/bin/env python3
"""Compares tile sizes of gdl-lab's tiled convolution kernels on this machine's GPU: for each
net and size, one `gdl-lab bench --backend wgpu` process times the same training session with
each tile setting in turn (`--tiles`, given several times), so that nothing is rebuilt and
shaders compile once per setting. Prints a Markdown table of median step times, each with its
ratio to the defaults (the first setting), and each setting's first step (its compilation).

    bench/tiles.py --gdl-lab path/to/gdl-lab [--rows target:64,unet:64]
                   [--tiles "along=y;channels=16;voxels=4"] [--steps 3] [--timeout 300]

`--tiles` is a `;`-separated list of `gdl-lab bench --tiles` values; the defaults are always
timed first. Used by bench/gpu.sh; on lavapipe (no GPU) it runs the same way, slowly.
"""
import argparse
import json
import subprocess

DEFAULT_SWEEP = ";".join([
    "along=y", "weight_grad=lanes", "along=y,weight_grad=lanes", "along=y,channels=16",
    "along=y,voxels=16", "channels=16", "channels=16,voxels=4", "channels=4", "voxels=4",
    "voxels=16", "workgroup=64", "workgroup=256",
    "weight_grad_threads=32768", "weight_grad_threads=524288",
    "weight_grad=lanes,weight_grad_threads=524288",
])


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gdl-lab", required=True)
    parser.add_argument("--rows", default="target:64,unet:64")
    parser.add_argument("--tiles", default=DEFAULT_SWEEP)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300)
    options = parser.parse_args()
    # "" is the defaults: `--tiles ""` parses to them and is printed in full by gdl-lab.
    settings = [""] + [t.strip() for t in options.tiles.split(";") if t.strip()]
    rows = [(r.split(":")[0], int(r.split(":")[1])) for r in options.rows.split(",") if r]

    results = {}
    for model, size in rows:
        command = [options.gdl_lab, "bench", "--backend", "wgpu", "--model", model,
                   "--size", str(size), "--steps", str(options.steps), "--warmup", "1"]
        for setting in settings:
            command += ["--tiles", setting]
        try:
            run = subprocess.run(command, capture_output=True, text=True,
                                 timeout=options.timeout)
        except subprocess.TimeoutExpired:
            results[(model, size)] = f"no result within {options.timeout:.0f} s"
            continue
        if run.returncode != 0:
            results[(model, size)] = f"failed (exit {run.returncode}): " \
                                     f"{' '.join(run.stderr.split())[-200:]}"
            continue
        summary = json.loads(run.stdout.strip().splitlines()[-1])
        results[(model, size)] = summary.get("by_tiles", [summary])

    header = ["tiles"] + [f"{m} {s}³ (ms)" for m, s in rows] + [f"{m} {s}³ first step (s)"
                                                                 for m, s in rows]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for index, setting in enumerate(settings):
        times, firsts = [], []
        for row in rows:
            result = results[row]
            if isinstance(result, str):
                times.append(result if index == 0 else "–")
                firsts.append("–")
                continue
            mine, default = result[index], result[0]
            ratio = mine["median_step_s"] / default["median_step_s"]
            times.append(f"{mine['median_step_s'] * 1000:.1f} ({ratio:.2f}×)")
            firsts.append(f"{mine['first_step_s']:.1f}")
        print("| " + " | ".join([setting or "defaults"] + times + firsts) + " |", flush=True)
    named = next((r[0]["tiles"] for r in results.values() if not isinstance(r, str)), None)
    if named:
        print(f"\ndefaults: {named}; each later setting changes only what it names")


if __name__ == "__main__":
    main()
