#!/usr/bin/env python3
"""Reference loss vectors computed by PyTorch and MONAI in float64, in the shared format
(`tests/data/reference-losses/README.md`): `tests/reference.rs` checks gdl-lab against them.

    python scripts/reference_cases.py --check DIR        recompute every case in DIR from its
                                                         inputs; fail on any difference
    python scripts/reference_cases.py --write DIR        write the cases this script makes
    python scripts/reference_cases.py --regions DIR      write (and with --check-regions DIR,
                                                         recompute) the region cases: BraTS's
                                                         WT/TC/ET targets, sigmoid outputs

Needs torch, monai and numpy (`pip install torch monai numpy`). The cases written here are the
"confident but not saturated" ones: logits of a net that is right with probabilities of about
0.6-0.95, so gradients spread over a range instead of all sitting near 1/N (an untrained net) or
near 0 (a saturated one), and a wrong scale or a zero gradient shows.
"""

import argparse
import json
import pathlib
import sys

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss, GeneralizedDiceLoss

torch.set_default_dtype(torch.float64)

WEIGHTS = ("square", "simple", "uniform")


def gdl(w_type, include_background, batch, softmax=True):
    return GeneralizedDiceLoss(
        include_background=include_background,
        to_onehot_y=softmax,
        softmax=softmax,
        w_type=w_type,
        smooth_nr=1e-5,
        smooth_dr=1e-5,
        batch=batch,
    )


def losses(logits, labels):
    """name -> a function of the logits (requiring grad) giving the loss, as the README names them."""
    classes = logits.shape[1]
    target = labels.unsqueeze(1)  # [B, 1, D, H, W], as MONAI takes it
    onehot = F.one_hot(labels, classes).permute(0, 4, 1, 2, 3).to(torch.float64)

    def seed_soft_dice(x):
        p = torch.softmax(x, 1)
        axes = (2, 3, 4)
        inter = (p * onehot).sum(axes)
        return 1 - ((2 * inter + 1e-6) / (p.sum(axes) + onehot.sum(axes) + 1e-6)).mean()

    table = {
        "bce_with_logits_onehot": lambda x: F.binary_cross_entropy_with_logits(x, onehot),
        "cross_entropy": lambda x: F.cross_entropy(x, labels),
        "seed_soft_dice": seed_soft_dice,
        "dice_mean": lambda x: DiceLoss(softmax=True, to_onehot_y=True)(x, target),
    }
    for w in WEIGHTS:
        for bg in (0, 1):
            for batch in (0, 1):
                loss = gdl(w, bool(bg), bool(batch))
                table[f"gdl_{w}_bg{bg}_batch{batch}"] = lambda x, loss=loss: loss(x, target)
    return table


def misuse_values(logits, labels):
    """The two lab misuses (values only): raw logits as probabilities; the label map as target."""
    target = labels.unsqueeze(1)
    on_logits = gdl("square", True, False, softmax=False)(
        logits, F.one_hot(labels, logits.shape[1]).permute(0, 4, 1, 2, 3).to(torch.float64)
    )
    anything_but_background = 1 - torch.softmax(logits, 1)[:, :1]
    label_map = gdl("square", True, False, softmax=False)(
        anything_but_background, target.to(torch.float64)
    )
    return {
        "misuse_gdl_on_logits": on_logits.item(),
        "misuse_gdl_label_map_as_target": label_map.item(),
    }


def clip_case(grads, max_norm):
    params = [torch.nn.Parameter(torch.zeros(len(g))) for g in grads]
    for p, g in zip(params, grads):
        p.grad = torch.tensor(g)
    total = torch.nn.utils.clip_grad_norm_(params, max_norm=max_norm).item()
    return {
        "max_norm": max_norm,
        "grads": grads,
        "total_norm": total,
        "clipped": [p.grad.tolist() for p in params],
    }


def values_and_gradients(case, table):
    """The case's logits and labels, and `expected` and `grad` of each loss of
    `table(logits, labels)` (name -> a function of the logits)."""
    shape = case["shape"]
    b, c, d, h, w = shape
    logits = torch.tensor(case["logits"]).reshape(shape)
    labels = torch.tensor(case["labels"], dtype=torch.long).reshape(b, d, h, w)
    expected, grad = {}, {}
    for name, loss_fn in table(logits, labels).items():
        x = logits.clone().requires_grad_(True)
        value = loss_fn(x)
        value.backward()
        expected[name] = value.item()
        grad[name] = x.grad.flatten().tolist()
    return logits, labels, expected, grad


def compute(case):
    """Fills `expected`, `grad` and `clip` of a case from its inputs."""
    logits, labels, expected, grad = values_and_gradients(case, losses)
    expected.update(misuse_values(logits, labels))
    case["expected"] = expected
    case["grad"] = grad
    case["clip"] = clip_case(case["clip"]["grads"], case["clip"]["max_norm"])
    return case


def confident_case(seed, shape, margin, noise, absent_class=None):
    """Logits of a net that is right but not certain: the true class `margin` above the rest,
    plus Gaussian noise. Labels are blobs (a few classes per sample, one of them possibly absent)."""
    rng = np.random.default_rng(seed)
    b, c, d, h, w = shape
    labels = rng.integers(0, c, size=(b, d, h, w))
    if absent_class is not None:
        labels[labels == absent_class] = 0
    logits = rng.normal(0.0, noise, size=shape)
    for k in range(c):
        logits[:, k][labels == k] += margin
    grads = [rng.normal(0.0, 0.5, size=12).tolist(), rng.normal(0.0, 0.5, size=5).tolist()]
    return {
        "seed": seed,
        "confident": True,
        "shape": list(shape),
        "logits": logits.flatten().tolist(),
        "labels": labels.flatten().tolist(),
        "clip": {"grads": grads, "max_norm": 1.0},
    }


NEW_CASES = {
    # file stem: (seed, shape, margin, noise, absent class)
    "case_0008": (8, (2, 4, 3, 4, 5), 2.5, 0.8, None),
    "case_0009": (9, (1, 3, 4, 4, 4), 2.0, 1.0, None),
    "case_0010": (10, (2, 5, 3, 3, 3), 3.0, 0.7, 4),  # class 4 absent: the infinite-weight rule
    "case_0011": (11, (3, 2, 2, 3, 4), 1.5, 0.6, None),
}


# BraTS's classes once renumbered (labels 0, 1, 2, 4 or 0-3): 1 necrotic core, 2 oedema,
# 3 enhancing tumour. The regions as MONAI's ConvertToMultiChannelBasedOnBratsClasses makes them,
# in gdl-lab's channel order: WT = {1, 2, 3}, TC = {1, 3}, ET = {3}.
REGIONS = ((1, 2, 3), (1, 3), (3,))


def regions_of(labels):
    """[B, D, H, W] classes -> [B, 3, D, H, W] float masks (WT, TC, ET)."""
    return torch.stack([sum((labels == c) for c in r).clamp(max=1) for r in REGIONS], 1).to(
        torch.float64
    )


def region_losses(logits, labels):
    """name -> loss of the three region logits [B, 3, ...] against BraTS's regions."""
    target = regions_of(labels)
    table = {"bce_with_logits_regions": lambda x: F.binary_cross_entropy_with_logits(x, target)}
    for w in WEIGHTS:
        for batch in (0, 1):
            loss = GeneralizedDiceLoss(
                include_background=True,
                sigmoid=True,
                w_type=w,
                smooth_nr=1e-5,
                smooth_dr=1e-5,
                batch=bool(batch),
            )
            table[f"gdl_sigmoid_{w}_batch{batch}"] = lambda x, loss=loss: loss(x, target)
    return table


def compute_regions(case):
    """Fills `expected` and `grad` of a region case from its inputs."""
    _, _, expected, grad = values_and_gradients(case, region_losses)
    case["expected"] = expected
    case["grad"] = grad
    return case


def region_case(seed, shape, margin, noise, no_enhancing_in_sample=None):
    """Logits of a region net that is right but unsure: each region's logit `margin` above 0
    inside it and below outside, plus noise. Labels are random classes 0-3 (one sample may lack
    the enhancing tumour: an absent region, MONAI's infinite-weight rule)."""
    rng = np.random.default_rng(seed)
    b, _, d, h, w = shape
    labels = rng.integers(0, 4, size=(b, d, h, w))
    if no_enhancing_in_sample is not None:
        sample = labels[no_enhancing_in_sample]
        sample[sample == 3] = 1
    regions = regions_of(torch.tensor(labels)).numpy()
    logits = rng.normal(0.0, noise, size=shape) + margin * (2 * regions - 1)
    return {
        "seed": seed,
        "confident": True,
        "shape": list(shape),
        "logits": logits.flatten().tolist(),
        "labels": labels.flatten().tolist(),
    }


REGION_CASES = {
    # file stem: (seed, shape [B, 3, D, H, W], margin, noise, sample without enhancing tumour)
    "case_0000": (20, (2, 3, 3, 4, 5), 1.5, 1.0, None),
    "case_0001": (21, (1, 3, 4, 4, 4), 2.5, 0.8, None),
    "case_0002": (22, (2, 3, 3, 3, 3), 1.0, 1.2, 1),
}


def largest_difference(ours, theirs):
    if isinstance(ours, list):
        assert len(ours) == len(theirs)
        return max((largest_difference(a, b) for a, b in zip(ours, theirs)), default=0.0)
    if isinstance(ours, dict):
        assert ours.keys() == theirs.keys(), (sorted(ours), sorted(theirs))
        return max((largest_difference(ours[k], theirs[k]) for k in ours), default=0.0)
    return abs(ours - theirs)


def check(directory, recompute, keys):
    """Recomputes every case_*.json in `directory`; exits at the first difference."""
    worst = 0.0
    for path in sorted(directory.glob("case_*.json")):
        stored = json.loads(path.read_text())
        fresh = recompute(json.loads(path.read_text()))
        for key in keys:
            difference = largest_difference(fresh[key], stored[key])
            worst = max(worst, difference)
            if difference > 1e-12:
                sys.exit(f"{path}: {key} differs by {difference:.3e}")
    print(f"every case in {directory} recomputed; largest difference {worst:.1e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", type=pathlib.Path, help="recompute every case_*.json here")
    parser.add_argument("--write", type=pathlib.Path, help="write the new cases here")
    parser.add_argument("--regions", type=pathlib.Path, help="write the region cases here")
    parser.add_argument(
        "--check-regions", type=pathlib.Path, help="recompute every region case here"
    )
    args = parser.parse_args()
    print(f"torch {torch.__version__}", file=sys.stderr)
    if args.check:
        check(args.check, compute, ("expected", "grad", "clip"))
    if args.check_regions:
        check(args.check_regions, compute_regions, ("expected", "grad"))
    if args.regions:
        args.regions.mkdir(parents=True, exist_ok=True)
        for stem, (seed, shape, margin, noise, absent) in REGION_CASES.items():
            case = compute_regions(region_case(seed, shape, margin, noise, absent))
            (args.regions / f"{stem}.json").write_text(json.dumps(case))
            print(f"regions {stem}: shape {shape}, GDL square {case['expected']['gdl_sigmoid_square_batch0']:.4f}")
    if args.write:
        args.write.mkdir(parents=True, exist_ok=True)
        for stem, (seed, shape, margin, noise, absent) in NEW_CASES.items():
            case = compute(confident_case(seed, shape, margin, noise, absent))
            largest = max(max(abs(g) for g in grad) for grad in case["grad"].values())
            (args.write / f"{stem}.json").write_text(json.dumps(case))
            print(f"{stem}: shape {shape}, largest |gradient| {largest:.4f}")


if __name__ == "__main__":
    main()
