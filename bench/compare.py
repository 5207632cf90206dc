#!/usr/bin/env python3
"""Runs `gdl-lab bench` and bench/pytorch_step.py for each net and size, one after the other on
this machine, and prints a Markdown table of median step times with the ratios gdl-lab / PyTorch.

    bench/compare.py --gdl-lab path/to/gdl-lab [--models simple,target,unet] [--sizes 16,32,64]
                     [--rows target:64,unet:128] [--backends flex,wgpu] [--convs auto,gemm,burn]
                     [--torch-device cpu|cuda] [--cudnn-benchmark] [--python python3]
                     [--timeout 240] [--threads N]

Each gdl-lab column is one backend with one convolution algorithm (`gdl-lab bench --conv`);
`--cudnn-benchmark` adds a second PyTorch column with `torch.backends.cudnn.benchmark = True`.
A run that fails or outlasts --timeout prints its error in its cell; the table goes on.
Both sides get the same CPU thread count (--threads, default one per core) and report their
parameter count, λ and untimed warm-up steps; where these differ the script says so and exits 1.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def last_json(command, env=None, timeout=None):
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {timeout} s"}
    if result.returncode != 0:
        return {"error": f"failed (exit {result.returncode}): {' '.join(result.stderr.split())[-200:]}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def steps_for(size):
    # Enough timed steps for a stable median without spending minutes on large sizes.
    return {16: 10, 32: 6, 64: 5}.get(size, 3)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gdl-lab", required=True)
    parser.add_argument("--models", default="simple,target,unet")
    parser.add_argument("--sizes", default="16,32,64")
    parser.add_argument("--rows", default="", help="model:size pairs, instead of models × sizes")
    parser.add_argument("--backends", default="flex,wgpu")
    parser.add_argument("--convs", default="auto", help="gdl-lab bench --conv values, one column each")
    parser.add_argument("--torch-device", default="cpu", help="cpu, cuda, or none (no PyTorch)")
    parser.add_argument("--cudnn-benchmark", action="store_true")
    parser.add_argument("--python", default="",
                        help="run pytorch_step.py with this interpreter instead of bench/pytorch.sh")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per run")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="CPU threads for both flex (rayon) and PyTorch")
    options = parser.parse_args()
    mismatches = []
    backends = [b for b in options.backends.split(",") if b]
    convs = [c for c in options.convs.split(",") if c]
    columns = [(b, c) for b in backends for c in convs]

    def label(column):
        backend, conv = column
        return backend if conv == "auto" else f"{backend} {conv}"
    torch_columns = [] if options.torch_device == "none" else (
        [False] + ([True] if options.cudnn_benchmark else []))

    def torch_label(benchmark):
        return f"PyTorch {options.torch_device}" + (" cudnn.benchmark" if benchmark else "")
    header = (["net", "size"] + [f"gdl-lab {label(c)} (ms)" for c in columns]
              + [f"{torch_label(b)} (ms)" for b in torch_columns]
              + ([f"{label(c)} / best PyTorch" for c in columns] if torch_columns else [])
              + [f"{label(c)} first step (s)" for c in columns])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header), flush=True)
    if options.rows:
        rows = [(r.split(":")[0], int(r.split(":")[1])) for r in options.rows.split(",") if r]
    else:
        rows = [(m, int(s)) for m in options.models.split(",") for s in options.sizes.split(",")]
    adapters = {}
    torch_version = "?"
    for model, size in rows:
        steps = steps_for(size)
        ours = {}
        for backend, conv in columns:
            run = last_json([options.gdl_lab, "bench", "--model", model, "--size", str(size),
                             "--steps", str(steps), "--backend", backend, "--conv", conv,
                             "--threads", str(options.threads)],
                            timeout=options.timeout)
            ours[(backend, conv)] = run
            if "adapter" in run:
                adapters[backend] = run["adapter"]
        torch_runs = []
        for benchmark in torch_columns:
            command = ([options.python, os.path.join(HERE, "pytorch_step.py")] if options.python
                       else [os.path.join(HERE, "pytorch.sh")])
            command += ["--model", model, "--size", str(size), "--steps", str(steps),
                        "--device", options.torch_device, "--threads", str(options.threads)]
            if benchmark:
                command.append("--cudnn-benchmark")
            run = last_json(command, timeout=options.timeout)
            torch_version = run.get("torch", torch_version)
            torch_runs.append(run)
        # The same work on both sides, or the ratio means nothing.
        for run in list(ours.values()) + torch_runs:
            for key in ("parameters", "lambda", "warmup_steps", "threads"):
                theirs = [r[key] for r in torch_runs if key in r]
                if key in run and theirs and run[key] != theirs[0]:
                    mismatches.append(f"{model} {size}³: {key} {run[key]} vs PyTorch {theirs[0]}")
        times = [r["median_step_s"] for r in torch_runs if "median_step_s" in r]
        reference = min(times) if times else None

        def cell(run):
            return f"{run['median_step_s'] * 1000:.1f}" if "median_step_s" in run else run["error"]

        def ratio(run):
            if "median_step_s" in run and reference:
                return f"{run['median_step_s'] / reference:.2f}×"
            return "–"

        def first(run):
            return f"{run['first_step_s']:.1f}" if "first_step_s" in run else "–"
        row = ([model, f"{size}³"] + [cell(ours[c]) for c in columns]
               + [cell(r) for r in torch_runs]
               + ([ratio(ours[c]) for c in columns] if torch_columns else [])
               + [first(ours[c]) for c in columns])
        print("| " + " | ".join(row) + " |", flush=True)
    for backend, adapter in adapters.items():
        print(f"\n{backend}: {adapter}")
    if torch_columns:
        print(f"PyTorch: {torch_version}, {options.threads} threads on both sides", file=sys.stdout)
    if mismatches:
        print("\nNOT the same work:\n" + "\n".join(sorted(set(mismatches))), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
