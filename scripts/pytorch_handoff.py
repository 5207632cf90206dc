#!/usr/bin/env python3
"""The PyTorch hand-off, checked: the net `gdl-lab train --export-pytorch DIR` wrote, loaded into
DIR/gdl_lab_model.py's module with strict=True, run on the NIfTI file gdl-lab trained on, gives
the logits `gdl-lab train --write-logits FILE` wrote, within 1e-4.

    scripts/pytorch_handoff.py --dir DIR --image case_t1.nii.gz --logits logits.safetensors \
        [--label case_seg.nii.gz]

The axis order is what can go wrong (nibabel's arrays are [x, y, z], gdl-lab's tensors
[z, y, x]): on a volume whose three edges differ, the same net fed nibabel's order must not match,
and the script checks that too. With --label and MONAI installed, the run's MixedLoss is
evaluated once on the exported net's output (it must be finite).
"""
import argparse
import glob
import os
import sys

import numpy as np
import torch
from safetensors.numpy import load_file


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--image", required=True, nargs="+",
                        help="the image, or a case's modalities in the net's channel order")
    parser.add_argument("--logits", required=True)
    parser.add_argument("--label")
    options = parser.parse_args()

    sys.path.insert(0, options.dir)
    import gdl_lab_model as g

    weights = glob.glob(os.path.join(options.dir, "*-pytorch.safetensors"))
    if len(weights) != 1:
        raise SystemExit(f"expected one *-pytorch.safetensors in {options.dir}, found {weights}")
    net = g.load_net(weights[0])  # strict=True: a missing, extra or misshapen key fails here
    image = g.load_nifti(options.image[0]) if len(options.image) == 1 else g.load_case(options.image)
    with torch.no_grad():
        ours = net(image).numpy()
    reference = load_file(options.logits)["logits"]
    if ours.shape != reference.shape:
        raise SystemExit(f"PyTorch's logits are {ours.shape}, gdl-lab's {reference.shape}")
    worst = float(np.abs(ours - reference).max())
    name = type(net).__name__
    print(f"{name} on {', '.join(map(os.path.basename, options.image))} {list(image.shape)}: logits agree "
          f"within {worst:.2e} (bound 1e-4; values up to {np.abs(reference).max():.3f})")
    if not worst <= 1e-4:
        raise SystemExit(f"{name}: the PyTorch copy's logits differ from gdl-lab's by {worst}")

    # The same net fed nibabel's [x, y, z] order must not pass: the check sees the axis order.
    xyz = image.permute(0, 1, 4, 3, 2).contiguous()
    with torch.no_grad():
        wrong = net(xyz).permute(0, 1, 4, 3, 2).numpy()
    if wrong.shape == reference.shape:
        off = float(np.abs(wrong - reference).max())
        print(f"  fed in nibabel's [x, y, z] order instead: off by {off:.2e}")
        if off <= 1e-4:
            raise SystemExit("the axis order made no difference: the volume or the kernels are "
                             "too symmetric for this check to see it")
    else:
        print(f"  fed in nibabel's [x, y, z] order instead: shape {list(wrong.shape)}, not "
              f"{list(reference.shape)}")

    if options.label:
        try:
            loss = g.MixedLoss()
        except ImportError as error:
            print(f"  MixedLoss not evaluated: {error} (MONAI is not installed)")
            return
        total, parts = loss(torch.from_numpy(ours), g.load_labels(options.label), epoch=0.0)
        print(f"  MixedLoss at epoch 0: {float(total):.5f} (warm-up {float(parts['warmup']):.5f}, "
              f"GDL {float(parts['gdl']):.5f})")
        if not torch.isfinite(total):
            raise SystemExit("the run's MixedLoss is not finite on the exported net's output")


if __name__ == "__main__":
    main()
