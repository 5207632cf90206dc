#!/usr/bin/env python3
"""Writes a real brain MRI and its grey/white-matter label map for `gdl-lab train`.

The scan is the MNI ICBM 2009a symmetric T1 template (an average of 152 real T1 MRI scans),
with its grey- and white-matter probability maps, exactly as nilearn's wheel on PyPI ships them
(1 mm, 197×233×189). We average 2×2×2 blocks to 2 mm (98×116×94, "about 100³") and label each
voxel with the likeliest of background (incl. CSF), grey matter (1) and white matter (2).

    brain.py --data DIR_WITH_THE_THREE_FILES --out-dir OUT
"""
import argparse
from pathlib import Path

import nibabel as nib
import numpy as np

PREFIX = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"


def halve(volume: np.ndarray) -> np.ndarray:
    """Mean over 2×2×2 blocks (odd edges dropped)."""
    x, y, z = (s - s % 2 for s in volume.shape)
    v = volume[:x, :y, :z].astype(np.float32)
    return v.reshape(x // 2, 2, y // 2, 2, z // 2, 2).mean(axis=(1, 3, 5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args()
    loaded = {k: nib.load(args.data / PREFIX.format(k)) for k in ("t1", "gm", "wm")}
    t1 = halve(loaded["t1"].get_fdata())
    # The probability maps are stored as 0..255.
    gm = halve(loaded["gm"].get_fdata()) / 255.0
    wm = halve(loaded["wm"].get_fdata()) / 255.0
    background = np.clip(1.0 - gm - wm, 0.0, 1.0)
    labels = np.argmax(np.stack([background, gm, wm]), axis=0).astype(np.uint8)
    affine = loaded["t1"].affine.copy()
    affine[:3, :3] *= 2.0
    args.out_dir.mkdir(parents=True, exist_ok=True)
    image_path = args.out_dir / "mni152_2mm_t1.nii.gz"
    label_path = args.out_dir / "mni152_2mm_gm_wm.nii.gz"
    nib.save(nib.Nifti1Image(t1, affine), image_path)
    nib.save(nib.Nifti1Image(labels, affine), label_path)
    counts = np.bincount(labels.ravel(), minlength=3)
    print(f"{image_path}: {t1.shape}, 2 mm")
    print(f"{label_path}: background {counts[0]}, grey matter {counts[1]}, white matter {counts[2]} voxels")


if __name__ == "__main__":
    main()
