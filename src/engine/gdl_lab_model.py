"""gdl-lab's nets and mixed loss in PyTorch, written by gdl-lab for one trained run.

Continue where the page (or `gdl-lab train`) stopped:

    import gdl_lab_model as g
    net = g.load_net("gdl-lab-pytorch.safetensors")   # strict: every key and shape must match
    image = g.load_nifti("case_t1.nii.gz")             # [1, 1, z, y, x], normalised as gdl-lab does
    image = g.load_case(["case_t1.nii.gz", "case_t1ce.nii.gz", "case_t2.nii.gz",
                         "case_flair.nii.gz"])       # several modalities: [1, M, z, y, x], in
                                                     # SETTINGS["channels"]' order
    logits = net(image)                                # [1, C, z, y, x]: gdl-lab's logits
    target = g.load_labels("case_seg.nii.gz")          # [1, z, y, x] classes 0..C-1
    loss, parts = g.MixedLoss()(logits, target, epoch=0.0)   # the run's settings (SETTINGS)
    classes = g.predict_classes(logits)                # [1, z, y, x]: what gdl-lab would predict

A region net (SETTINGS["targets"] == "regions") outputs BraTS's three overlapping regions, WT,
TC and ET, a sigmoid each: `region_targets` makes them from the classes (as MONAI's
ConvertToMultiChannelBasedOnBratsClasses does), `MixedLoss` trains them with BCE and MONAI's
GeneralizedDiceLoss(sigmoid=True), and `predict_classes` writes them back as BraTS's labels.

Axis order: gdl-lab's tensors are [batch, channel, z, y, x], z the file's slowest axis, and its
kernels are [out, in, kz, ky, kx], as PyTorch's Conv3d expects. nibabel's arrays are [x, y, z],
so `load_nifti` and `load_labels` transpose them to [z, y, x]; the exported kernels then apply
as they are. `to_nifti_order` turns a [z, y, x] array back for nibabel.

Needs torch, numpy, nibabel and safetensors; `MixedLoss` also needs MONAI (its
GeneralizedDiceLoss, with the arguments named as MONAI names them).
"""
import json
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# The run's settings, as gdl-lab's link and flags name them (written by gdl-lab).
SETTINGS = {}


class Simple3DModel(nn.Module):
    """The seed's net: conv 1->8->16 (k3, ReLU), 16->C (k1); `in_channels` modalities in."""

    def __init__(self, num_classes=4, in_channels=1):
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, 8, kernel_size=3, padding=1)
        self.conv2 = nn.Conv3d(8, 16, kernel_size=3, padding=1)
        self.conv3 = nn.Conv3d(16, num_classes, kernel_size=1)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        return self.conv3(x)


class Target3DModel(nn.Module):
    """The seed's wider net: conv 1->16->32->64 (k3, ReLU), 64->C (k1)."""

    def __init__(self, num_classes=4, in_channels=1):
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv3d(16, 32, kernel_size=3, padding=1)
        self.conv3 = nn.Conv3d(32, 64, kernel_size=3, padding=1)
        self.conv4 = nn.Conv3d(64, num_classes, kernel_size=1)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        return self.conv4(x)


class ConvBlock(nn.Module):
    """conv k3 (stride 1 or 2, padding 1) + InstanceNorm (affine) + LeakyReLU(0.01)."""

    def __init__(self, channels_in, channels_out, stride=1):
        super().__init__()
        self.conv = nn.Conv3d(channels_in, channels_out, kernel_size=3, stride=stride, padding=1)
        self.norm = nn.InstanceNorm3d(channels_out, eps=1e-5, affine=True)

    def forward(self, x):
        return F.leaky_relu(self.norm(self.conv(x)), 0.01)


class UNet3d(nn.Module):
    """gdl-lab's compact U-Net: three levels (8, 16, 32 channels), strided-conv down,
    nearest-neighbour up + conv, skips concatenated as [up, skip]. Edges: multiples of 4.

    Weight layout (the exported keys): encode1.0.*, encode1.1.*, down1.*, encode2.*, down2.*,
    bottom.*, up2.*, decode2.*, up1.*, decode1.* (each conv.weight, conv.bias, norm.weight,
    norm.bias), head.weight, head.bias."""

    def __init__(self, num_classes=4, in_channels=1, base_channels=8):
        super().__init__()
        c1, c2, c3 = base_channels, 2 * base_channels, 4 * base_channels
        self.encode1 = nn.ModuleList([ConvBlock(in_channels, c1), ConvBlock(c1, c1)])
        self.down1 = ConvBlock(c1, c2, stride=2)
        self.encode2 = ConvBlock(c2, c2)
        self.down2 = ConvBlock(c2, c3, stride=2)
        self.bottom = ConvBlock(c3, c3)
        self.up2 = ConvBlock(c3, c2)
        self.decode2 = ConvBlock(2 * c2, c2)
        self.up1 = ConvBlock(c2, c1)
        self.decode1 = ConvBlock(2 * c1, c1)
        self.head = nn.Conv3d(c1, num_classes, kernel_size=1)

    def forward(self, x):
        skip1 = self.encode1[1](self.encode1[0](x))
        skip2 = self.encode2(self.down1(skip1))
        bottom = self.bottom(self.down2(skip2))
        up = self.up2(F.interpolate(bottom, scale_factor=2, mode="nearest"))
        decoded = self.decode2(torch.cat([up, skip2], dim=1))
        up = self.up1(F.interpolate(decoded, scale_factor=2, mode="nearest"))
        decoded = self.decode1(torch.cat([up, skip1], dim=1))
        return self.head(decoded)


NETS = {"simple": Simple3DModel, "target": Target3DModel, "unet": UNet3d}


def load_net(path, device="cpu"):
    """The net gdl-lab exported to `path` (.safetensors), its weights loaded with strict=True."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(path, framework="pt") as f:
        metadata = f.metadata() or {}
    channels = metadata.get("channels")
    channels = channels.split(",") if channels else SETTINGS.get("channels", ["image"])
    # A region net has three outputs (WT, TC, ET) whatever its label map's classes.
    outputs = 3 if SETTINGS.get("targets") == "regions" else int(
        metadata.get("classes", SETTINGS.get("classes", 4)))
    net = NETS[metadata.get("model", SETTINGS.get("model", "unet"))](
        num_classes=outputs, in_channels=len(channels))
    net.load_state_dict(load_file(path, device=device), strict=True)
    return net.to(device).eval()


def normalise_nonzero(image):
    """gdl-lab's z-score over the non-zero voxels (the head), in float64; zeros stay 0."""
    image = image.astype(np.float64)
    inside = image != 0
    if inside.any():
        values = image[inside]
        std = values.std()
        image[inside] = (values - values.mean()) * (1.0 / std if std > 0 else 0.0)
    return image.astype(np.float32)


def _volume(path):
    import nibabel

    data = np.asarray(nibabel.load(path).get_fdata(dtype=np.float32))
    if data.ndim == 4:
        data = data[..., 0]  # gdl-lab trains on a 4D file's first volume
    return np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)


def load_nifti(path):
    """The image at `path` as gdl-lab feeds it to the net: [1, 1, z, y, x] float32, normalised."""
    zyx = np.ascontiguousarray(_volume(path).transpose(2, 1, 0))
    return torch.from_numpy(normalise_nonzero(zyx))[None, None]


def load_case(paths):
    """A case's modalities as gdl-lab feeds them to the net: [1, M, z, y, x] float32, each
    channel normalised on its own, in the order given (give them in SETTINGS["channels"]'
    order: gdl-lab's net reads channel i as that modality). A 4D file (the Decathlon's) gives
    its volumes in file order."""
    import nibabel

    planes = []
    for path in paths:
        data = np.asarray(nibabel.load(path).get_fdata(dtype=np.float32))
        volumes = [data[..., i] for i in range(data.shape[3])] if data.ndim == 4 else [data]
        for volume in volumes:
            volume = np.nan_to_num(volume, nan=0.0, posinf=0.0, neginf=0.0)
            planes.append(normalise_nonzero(np.ascontiguousarray(volume.transpose(2, 1, 0))))
    expected = len(SETTINGS.get("channels", planes))
    if len(planes) != expected:
        raise ValueError(f"the net reads {expected} channels ({SETTINGS.get('channels')}); "
                         f"these files hold {len(planes)}")
    return torch.from_numpy(np.stack(planes))[None]


def load_labels(path):
    """The label map at `path` as gdl-lab's classes: [1, z, y, x] int64 (file label values
    renumbered in order, e.g. BraTS 0/1/2/4 -> 0/1/2/3, as SETTINGS["label_values"] lists)."""
    values = SETTINGS.get("label_values") or sorted(set(np.unique(_volume(path)).astype(int)) | {0})
    zyx = _volume(path).transpose(2, 1, 0).astype(np.int64)
    classes = np.searchsorted(np.asarray(values), zyx)
    return torch.from_numpy(np.ascontiguousarray(classes))[None]


def to_nifti_order(zyx):
    """A [z, y, x] array in nibabel's [x, y, z] order."""
    return np.ascontiguousarray(np.asarray(zyx).transpose(2, 1, 0))


def schedule_lambda(epoch, settings=SETTINGS):
    """lambda(t): 0 during the warm-up, then the hand-over to the GDL (gdl-lab's Schedule)."""
    warmup, ramp = settings.get("warmup_epochs", 2.0), settings.get("ramp_epochs", 4.0)
    schedule = settings.get("schedule", "linear")
    if epoch < warmup:
        return 0.0
    if schedule == "constant":
        return 0.5
    if schedule == "switch" or ramp <= 0:
        return 1.0
    x = min(max((epoch - warmup) / ramp, 0.0), 1.0)
    if schedule == "linear":
        return x
    if schedule == "cosine":
        return 0.5 * (1.0 - math.cos(math.pi * x))
    return math.exp(-5.0 * (1.0 - x) ** 2)  # sigmoid


# Which of WT, TC and ET each tissue belongs to (SETTINGS["region_tissues"] names the tissue of
# each class).
REGIONS_OF_TISSUE = {
    "background": (0, 0, 0),
    "oedema": (1, 0, 0),
    "core": (1, 1, 0),
    "enhancing": (1, 1, 1),
}


def region_targets(classes, settings=SETTINGS):
    """[B, z, y, x] classes -> [B, 3, z, y, x] float masks WT, TC, ET (a region net's targets)."""
    membership = torch.tensor([REGIONS_OF_TISSUE[t] for t in settings["region_tissues"]],
                              dtype=torch.float32, device=classes.device)
    return membership[classes].movedim(-1, 1)


def predict_classes(logits, settings=SETTINGS):
    """The classes gdl-lab predicts from `logits` [B, C, z, y, x]: the most probable class, or
    for a region net each region where its sigmoid exceeds 1/2, written back as BraTS's labels
    are (the whole tumour as oedema, the core inside it, the enhancing tumour inside that)."""
    if settings.get("targets") != "regions":
        return logits.argmax(1)
    tissues = settings["region_tissues"]
    inside = torch.sigmoid(logits) > 0.5
    classes = torch.zeros_like(logits[:, 0], dtype=torch.long)
    for region, tissue in enumerate(("oedema", "core", "enhancing")):
        classes[inside[:, region]] = tissues.index(tissue) if tissue in tissues else 0
    return classes


class MixedLoss(nn.Module):
    """(1 - lambda(t)) * bce_weight * warm-up + lambda(t) * gdl_weight * GDL, as gdl-lab trains.

    The warm-up is BCE with logits on each one-hot channel (the seed's) or cross-entropy; the
    GDL is MONAI's GeneralizedDiceLoss on softmax probabilities. A region net's targets are its
    regions (`region_targets`): BCE on them, and the GDL with a sigmoid per region."""

    def __init__(self, settings=SETTINGS):
        super().__init__()
        from monai.losses import GeneralizedDiceLoss

        self.settings = dict(settings)
        self.regions = settings.get("targets") == "regions"
        self.gdl = GeneralizedDiceLoss(
            include_background=settings.get("include_background", True),
            to_onehot_y=not self.regions,
            softmax=not self.regions,
            sigmoid=self.regions,
            w_type=settings.get("w_type", "simple"),
            smooth_nr=settings.get("smooth_nr", 1e-5),
            smooth_dr=settings.get("smooth_dr", 1e-5),
            batch=settings.get("batch_dice", False),
        )

    def forward(self, logits, target, epoch):
        """`logits` [B, C, z, y, x], `target` [B, z, y, x] classes, `epoch` fractional."""
        s = self.settings
        if self.regions:
            masks = region_targets(target, s).to(logits.dtype)
            warmup = F.binary_cross_entropy_with_logits(logits, masks)
            gdl = self.gdl(logits, masks)
        else:
            one_hot = F.one_hot(target, logits.shape[1]).movedim(-1, 1).to(logits.dtype)
            if s.get("warmup", "ce") == "bce":
                warmup = F.binary_cross_entropy_with_logits(logits, one_hot)
            else:
                warmup = F.cross_entropy(logits, target)
            gdl = self.gdl(logits, target[:, None])
        lam = schedule_lambda(epoch, s)
        total = (1 - lam) * s.get("bce_weight", 0.5) * warmup + lam * s.get("gdl_weight", 1.0) * gdl
        return total, {"warmup": warmup, "gdl": gdl, "lambda": lam}
