#!/usr/bin/env python3
"""How cost grows: `gdl-lab bench` step time and peak memory against the patch edge, then the
time of one whole-volume sliding-window prediction for a few volume sizes. Prints Markdown.

    bench/scale.py --gdl-lab path/to/gdl-lab [--backend flex] [--models unet,target]
                   [--sizes 16,32,48,64,80,96] [--predict 128x128x128,240x240x155] [--window 32]
"""
import argparse

from compare import last_json  # same folder


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gdl-lab", required=True)
    parser.add_argument("--backend", default="flex")
    parser.add_argument("--models", default="unet,target")
    parser.add_argument("--sizes", default="16,32,48,64,80,96")
    parser.add_argument("--predict", default="128x128x128,240x240x155")
    parser.add_argument("--window", default="32")
    options = parser.parse_args()
    gdl_lab = [options.gdl_lab, "bench", "--backend", options.backend]

    print("| net | patch | median step (s) | step / 32³ step | voxels / 32³ | peak memory (MiB) |")
    print("|---|---|---|---|---|---|")
    for model in options.models.split(","):
        base = None
        for size in [int(s) for s in options.sizes.split(",")]:
            # Few steps at the big sizes: each takes seconds and the spread is small.
            steps = 5 if size <= 48 else 3
            run = last_json(gdl_lab + ["--model", model, "--size", str(size), "--steps",
                                       str(steps), "--warmup", "1"])
            if "error" in run:
                print(f"| {model} | {size}³ | {run['error']} | | | |")
                continue
            if size == 32:
                base = run["median_step_s"]
            ratio = f"{run['median_step_s'] / base:.2f}×" if base else "–"
            print(f"| {model} | {size}³ | {run['median_step_s']:.3f} | {ratio} | "
                  f"{(size / 32) ** 3:.2f}× | {run['peak_rss_mib']:.0f} |", flush=True)

    print()
    print(f"| net | volume | windows ({options.window}³, 50 % overlap) | prediction (s) | "
          "per window (ms) | peak memory (MiB) |")
    print("|---|---|---|---|---|---|")
    for model in options.models.split(","):
        for dims in [d for d in options.predict.split(",") if d]:
            run = last_json(gdl_lab + ["--model", model, "--size", options.window,
                                       "--predict", dims])
            if "error" in run:
                print(f"| {model} | {dims} | {run['error']} | | | |")
                continue
            print(f"| {model} | {dims} | {run['windows']} | {run['predict_s']:.1f} | "
                  f"{1000 * run['predict_s'] / run['windows']:.1f} | {run['peak_rss_mib']:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
