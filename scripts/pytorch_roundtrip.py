#!/usr/bin/env python3
"""The PyTorch round trip, checked: a net gdl-lab exported (`gdl-lab train --export-pytorch DIR`)
is fine-tuned in PyTorch with the run's own `MixedLoss` from DIR/gdl_lab_model.py, saved as
people save nets (`safetensors.torch.save_file(net.state_dict(), …)`: PyTorch's names, no
gdl-lab metadata), and loaded back by `gdl-lab predict --weights` (the net, its channels and
classes read from the keys and shapes); gdl-lab's logits on the scan must equal PyTorch's within
1e-4 and its labels agree on at least 99.9 % of the voxels.

    scripts/pytorch_roundtrip.py --dir DIR --image case_t1.nii.gz --label case_seg.nii.gz \
        --gdl-lab target/debug/gdl-lab [--steps 20]

Fine-tuning on the whole scan (a single batch of one volume), Adam at the run's learning rate.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.numpy import load_file
from safetensors.torch import save_file


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--image", required=True, nargs="+",
                        help="the image, or a case's modalities in the net's channel order")
    parser.add_argument("--label", required=True)
    parser.add_argument("--gdl-lab", required=True, help="the gdl-lab binary")
    parser.add_argument("--steps", type=int, default=20)
    options = parser.parse_args()

    sys.path.insert(0, options.dir)
    import gdl_lab_model as g

    weights = glob.glob(os.path.join(options.dir, "*-pytorch.safetensors"))
    if len(weights) != 1:
        raise SystemExit(f"expected one *-pytorch.safetensors in {options.dir}, found {weights}")
    torch.manual_seed(0)
    net = g.load_net(weights[0])
    image = g.load_nifti(options.image[0]) if len(options.image) == 1 else g.load_case(options.image)
    target = g.load_labels(options.label)
    loss = g.MixedLoss()
    optimiser = torch.optim.Adam(net.parameters(), lr=g.SETTINGS.get("lr", 1e-3))
    steps_per_epoch = g.SETTINGS.get("steps_per_epoch", 25)
    before = None
    for step in range(options.steps):
        optimiser.zero_grad()
        total, _ = loss(net(image), target, epoch=step / steps_per_epoch)
        total.backward()
        optimiser.step()
        before = float(total.detach()) if before is None else before
    name = type(net).__name__
    print(f"{name}: fine-tuned {options.steps} steps in PyTorch, MixedLoss {before:.4f} -> "
          f"{float(total.detach()):.4f}")

    with tempfile.TemporaryDirectory() as work:
        tuned = os.path.join(work, "fine-tuned.safetensors")
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, tuned)
        with torch.no_grad():
            theirs = net(image).numpy()
        logits = os.path.join(work, "logits.safetensors")
        command = [options.gdl_lab, "predict", "--weights", tuned, "--crop", "false",
                   "--resample", "false", "--write-logits", logits]
        # A net saved from PyTorch carries no metadata: a region net says so by a flag.
        if g.SETTINGS.get("targets") == "regions":
            command += ["--targets", "regions"]
        for path in options.image:
            command += ["--image", path]
        result = subprocess.run(command + ["--label", options.label], capture_output=True,
                                text=True)
        if result.returncode != 0:
            raise SystemExit(f"gdl-lab predict refused the fine-tuned net: {result.stderr}")
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        ours = load_file(logits)["logits"]
    if ours.shape != theirs.shape:
        raise SystemExit(f"gdl-lab's logits are {ours.shape}, PyTorch's {theirs.shape}")
    worst = float(np.abs(ours - theirs).max())
    ours_classes = g.predict_classes(torch.from_numpy(ours)).numpy()
    agree = float((ours_classes == g.predict_classes(torch.from_numpy(theirs)).numpy()).mean())
    print(f"  loaded by gdl-lab predict as a {summary['model']} for {summary['classes']} classes: "
          f"logits within {worst:.2e} (bound 1e-4), labels agree on {100 * agree:.3f} % "
          f"(bound 99.9 %)")
    if not worst <= 1e-4:
        raise SystemExit(f"{name}: gdl-lab's logits differ from PyTorch's by {worst}")
    if not agree >= 0.999:
        raise SystemExit(f"{name}: the labels agree on only {100 * agree:.3f} % of the voxels")


if __name__ == "__main__":
    main()
