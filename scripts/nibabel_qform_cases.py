#!/usr/bin/env python3
"""qform-only NIfTI-1 files whose affines test the corners of nibabel's quaternion handling
(`nibabel.quaternions.fillpositive` with the header's float32 threshold, then `quat2mat`), with
the affine nibabel gives each one. `tests/volumes.rs` reads them and compares.

    python scripts/nibabel_qform_cases.py tests/data/qform

Needs nibabel and numpy. Each file is 2×2×2 float32; the header is written field by field here
(nibabel's own writer would rewrite the qform from an affine).
"""

import json
import math
import pathlib
import sys

import nibabel as nib
import numpy as np


def unit_axis_angle(axis, degrees):
    axis = np.asarray(axis, dtype=np.float64)
    axis /= np.linalg.norm(axis)
    half = math.radians(degrees) / 2
    return (axis * math.sin(half)).tolist()


CASES = {
    # name: (quatern b, c, d as float64 before the float32 store, pixdim[0..4], qoffset)
    "small_rotation": (unit_axis_angle([0.3, -0.5, 0.8], 2.0), [1, 1.0, 1.2, 1.5], [-90, 126, -72]),
    "small_rotation_qfac_minus_1": (
        unit_axis_angle([1, 0.2, 0], 5.0),
        [-1, 0.9, 0.9, 3.0],
        [10, -20, 30],
    ),
    # 180° about an oblique axis: b²+c²+d² lands just above 1 once stored as float32, so w² is
    # slightly negative; nibabel takes w = 0 (within 3·float32 eps).
    "half_turn_sum_above_1": ([0.6, 0.8, 0.0], [1, 1.0, 1.0, 1.0], [0, 0, 0]),
    # A near half-turn whose w² is a hair above 0 (7e-8) but inside the threshold: nibabel sets
    # w to 0, where sqrt(w²) would leave ~5e-4 in the off-diagonal entries.
    "half_turn_w2_inside_threshold": (
        [0.48 * (1 - 1e-8), 0.64 * (1 - 1e-8), 0.6 * (1 - 1e-8)],
        [1, 2.0, 2.0, 2.0],
        [1, 2, 3],
    ),
    # qfac 0 (unset): nibabel's header check makes it 1.
    "qfac_zero": (unit_axis_angle([0, 0, 1], 30.0), [0, 1.0, 1.0, 2.0], [5, 6, 7]),
    # qfac −0.5 (not ±1): nibabel's header check makes it 1, not −1.
    "qfac_minus_half": (unit_axis_angle([1, 1, 0], 20.0), [-0.5, 1.0, 1.0, 2.0], [0, 0, 0]),
    # Negative spacings: nibabel's header check takes their absolute values.
    "negative_pixdim": (unit_axis_angle([0, 1, 0], 10.0), [1, -1.0, 2.0, -3.0], [0, 0, 0]),
}


def write_case(path, bcd, pixdim, offset):
    header = nib.Nifti1Header()
    header.set_data_shape((2, 2, 2))
    header.set_data_dtype(np.float32)
    header["pixdim"][: len(pixdim)] = pixdim
    header["qform_code"] = 1
    header["sform_code"] = 0
    header["quatern_b"], header["quatern_c"], header["quatern_d"] = np.float32(bcd)
    header["qoffset_x"], header["qoffset_y"], header["qoffset_z"] = offset
    header["vox_offset"] = 352
    data = np.arange(8, dtype="<f4").tobytes()
    path.write_bytes(header.binaryblock + b"\0" * 4 + data)


def main():
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, (bcd, pixdim, offset) in CASES.items():
        path = out / f"{name}.nii"
        write_case(path, bcd, pixdim, offset)
        image = nib.load(path)
        b, c, d = (float(v) for v in image.header.get_qform_quaternion()[1:])
        expected[name] = {
            "affine": image.affine.tolist(),
            "bcd_squared": b * b + c * c + d * d,
        }
        print(f"{name}: b²+c²+d² = {expected[name]['bcd_squared']!r}")
    (out / "nibabel.json").write_text(
        json.dumps({"nibabel": nib.__version__, "cases": expected}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
