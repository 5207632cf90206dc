//! Files as a person hands them over: dropped together in any order, `.nii`, `.nii.gz` or
//! `.hdr` + `.img` pairs, sometimes misnamed. This sorts them into an image and a label map.

use super::LabelledVolume;
use super::labels::{LabelMapping, pair_image_and_labels_moving};
use super::nifti::{Limits, Volume};
pub use super::reading::{NamedFile, read_scans};
use super::reading::{Origin, read_scans_traced, stem_and_kind};
use super::source::ImageSource;

/// A scan with its label map, ready to train on.
#[derive(Clone, Debug)]
pub struct LoadedScan {
    /// The image's geometry and header (the prediction is written in it). Its `data` is empty:
    /// the intensities live once, in `volume.image`.
    pub image: Volume,
    pub volume: LabelledVolume,
    pub mapping: LabelMapping,
    pub image_name: String,
    pub label_name: String,
    /// True for the built-in phantom (the page remakes it when its size changes).
    pub demo: bool,
    /// The case's images by file name, in channel order (`image_name` is the first): the
    /// modalities the net reads, one input channel each.
    pub modalities: Vec<String>,
    /// Every image the case brought, in channel order (`modalities` when none was left out):
    /// what a person may choose from.
    pub images: Vec<String>,
    /// A name per class for legends: the phantom's tissue names, else "label 4".
    pub class_names: Vec<String>,
    /// What the person should know, one sentence each: the label convention recognised, and
    /// warnings from reading either file.
    pub warnings: Vec<String>,
    /// The files its intensities can be read from again ([`LoadedScan::release_image`]); `None`
    /// for the phantoms and scans made in memory, which always keep them.
    pub source: Option<ImageSource>,
}

impl LoadedScan {
    /// True while `volume.image` holds every channel's intensities.
    pub fn has_image(&self) -> bool {
        self.volume.image.len() == self.volume.voxel_count() * self.volume.channels
    }

    /// Lets go of the intensities when its files can give them again: a set of full-size cases
    /// would otherwise keep every modality of every case as f32 (four BraTS cases: 571 MB, in a
    /// browser worker whose memory never shrinks back). The labels stay (each case is scored in
    /// its own grid). True when they were let go.
    pub fn release_image(&mut self) -> bool {
        if self.source.is_none() {
            return false;
        }
        self.volume.image = Vec::new();
        true
    }

    /// Channel `index`'s intensities: as they are, or read again from its file when
    /// [`LoadedScan::release_image`] let them go.
    pub fn channel_intensities(&self, index: usize) -> Result<std::borrow::Cow<'_, [f32]>, String> {
        if index >= self.volume.channels {
            return Err(format!(
                "{} has {} channels; there is no channel {}.",
                self.image_name,
                self.volume.channels,
                index + 1
            ));
        }
        if self.has_image() {
            return Ok(std::borrow::Cow::Borrowed(self.volume.channel(index)));
        }
        let Some(source) = &self.source else {
            return Err(format!("{}: its intensities are gone.", self.image_name));
        };
        let plane = source.read_channel(index)?;
        if plane.len() != self.volume.voxel_count() {
            return Err(format!(
                "{}: its files no longer give the image they gave (another size).",
                self.image_name
            ));
        }
        Ok(std::borrow::Cow::Owned(plane))
    }

    /// The scan's voxels with every channel's intensities: as they are, or read again from the
    /// files when [`LoadedScan::release_image`] let them go.
    pub fn full_volume(&self) -> Result<std::borrow::Cow<'_, LabelledVolume>, String> {
        if self.has_image() {
            return Ok(std::borrow::Cow::Borrowed(&self.volume));
        }
        let Some(source) = &self.source else {
            return Err(format!("{}: its intensities are gone.", self.image_name));
        };
        let image = source.read()?;
        if image.len() != self.volume.voxel_count() * self.volume.channels {
            return Err(format!(
                "{}: its files no longer give the image they gave (another size).",
                self.image_name
            ));
        }
        Ok(std::borrow::Cow::Owned(LabelledVolume {
            dims: self.volume.dims,
            image,
            channels: self.volume.channels,
            labels: self.volume.labels.clone(),
            classes: self.volume.classes,
        }))
    }
}

fn lower(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// One picker's files: exactly one scan (its `.hdr` and `.img` together for a pair).
pub fn read_one_scan(
    files: &[NamedFile],
    what: &str,
    limits: &Limits,
) -> Result<(String, Volume), String> {
    let mut scans = read_scans(files, limits)?;
    match scans.len() {
        1 => Ok(scans.remove(0)),
        0 => Err(format!("Choose the {what} file.")),
        n => Err(format!(
            "The {what} picker got {n} scans; choose one (its .hdr and .img together for a pair)."
        )),
    }
}

/// How many distinct values, if every voxel is a non-negative integer and there are at most
/// 255 of them; `None` for anything that cannot be a label map.
fn label_values(volume: &Volume) -> Option<usize> {
    let mut seen = std::collections::BTreeSet::new();
    for &value in &volume.data {
        if value < 0.0 || value.fract() != 0.0 {
            return None;
        }
        seen.insert(value.to_bits());
        if seen.len() > 255 {
            return None;
        }
    }
    Some(seen.len())
}

/// True when a file's name says it holds labels (`seg`, `label`, `mask`, …).
pub fn sounds_like_labels(name: &str) -> bool {
    let name = lower(name);
    [
        "seg", "label", "mask", "gt", "truth", "annot", "aseg", "dseg",
    ]
    .iter()
    .any(|hint| name.contains(hint))
}

/// The modality of an image file as the cases of a set name it: its stem's tokens (split at
/// `_`, `-` and `.`) after those every image of its case shares, e.g. `t1ce` for
/// `BraTS2021_00000_t1ce.nii.gz` beside `BraTS2021_00000_t1.nii.gz`. A case with one image:
/// its last token when that names a known modality, else `image`.
pub fn modality_keys(names: &[String]) -> Vec<String> {
    let tokens: Vec<Vec<String>> = names
        .iter()
        .map(|name| {
            let (stem, _) = stem_and_kind(name);
            let stem = stem.strip_suffix(".nii").unwrap_or(&stem).to_string();
            stem.split(['_', '-', '.'])
                .filter(|token| !token.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect();
    if let [only] = &tokens[..] {
        let last = only.last().cloned().unwrap_or_default();
        return vec![if modality_rank(&last) < KNOWN_MODALITIES.len() {
            last
        } else {
            "image".into()
        }];
    }
    let shortest = tokens.iter().map(Vec::len).min().unwrap_or(0);
    let shared = (0..shortest)
        .take_while(|&i| tokens.iter().all(|t| t[i] == tokens[0][i]))
        .count();
    tokens.iter().map(|t| t[shared..].join("_")).collect()
}

/// BraTS's modalities in the order nnU-Net and MONAI stack them (2021's names and 2023's):
/// T1, T1 with contrast, T2, FLAIR.
const KNOWN_MODALITIES: [&[&str]; 4] = [
    &["t1", "t1n", "t1w"],
    &["t1ce", "t1c", "t1gd"],
    &["t2", "t2w"],
    &["flair", "t2f"],
];

/// The images named `names` in the order of a net's input channels `wanted` (modality keys as
/// its weights name them, e.g. `t1`, `t1ce`, `t2`, `flair`): for each wanted channel, the index
/// of its image in `names`; or a sentence naming the first channel no image brings. When the
/// weights do not name their channels (`wanted` empty, or the one generic `image`), the images
/// go in BraTS's order, as training stacks them, and only their count must agree.
pub fn match_channels(
    names: &[String],
    wanted: &[String],
    in_channels: usize,
) -> Result<Vec<usize>, String> {
    let generic = wanted.is_empty() || wanted.iter().all(|w| w == "image");
    if generic {
        if names.len() != in_channels {
            return Err(format!(
                "The net reads {in_channels} input channel{}; {} image{} given.",
                if in_channels == 1 { "" } else { "s" },
                names.len(),
                if names.len() == 1 { " was" } else { "s were" }
            ));
        }
        return Ok(channel_order(names));
    }
    let keys = modality_keys(names);
    // The Decathlon's channels are named by their place in the 4D file (`0000_flair` when a set
    // was read with its dataset.json, `0000` for a 4D file given alone): the place decides.
    let place = |key: &str| {
        let first = key.split('_').next().unwrap_or_default();
        (first.len() == 4 && first.bytes().all(|b| b.is_ascii_digit())).then(|| first.to_string())
    };
    let same = |a: &str, b: &str| {
        let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
        let known = modality_rank(&a) < KNOWN_MODALITIES.len();
        a == b
            || (known && modality_rank(&a) == modality_rank(&b))
            || (place(&a).is_some() && place(&a) == place(&b))
    };
    let mut order = Vec::with_capacity(wanted.len());
    for channel in wanted {
        let Some(index) = keys.iter().position(|key| same(key, channel)) else {
            return Err(format!(
                "The net reads {} (in this order); no image given is its {channel} (given: {}).",
                wanted.join(", "),
                keys.join(", ")
            ));
        };
        order.push(index);
    }
    Ok(order)
}

/// The position of a modality key in [`KNOWN_MODALITIES`], or past them for any other.
fn modality_rank(key: &str) -> usize {
    KNOWN_MODALITIES
        .iter()
        .position(|names| names.contains(&key))
        .unwrap_or(KNOWN_MODALITIES.len())
}

/// The order of a case's images as channels: BraTS's (T1, T1ce, T2, FLAIR), then by name.
fn channel_order(names: &[String]) -> Vec<usize> {
    let keys = modality_keys(names);
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by(|&a, &b| {
        (modality_rank(&keys[a]), &keys[a], &names[a]).cmp(&(
            modality_rank(&keys[b]),
            &keys[b],
            &names[b],
        ))
    });
    order
}

/// Scans dropped together: one label map (found by content: the only scan of small
/// non-negative integers; among several, the one whose name says so) and one image or, for a
/// case folder (BraTS: `_t1`, `_t1ce`, `_t2`, `_flair`, `_seg`), several modalities, which
/// become the input channels in BraTS's order ([`channel_order`]); `channels` (file names)
/// keeps those alone. Every modality must lie on the label map's grid.
pub fn sort_case(
    mut scans: Vec<(String, Volume)>,
    channels: Option<&[String]>,
    warnings_from: &[String],
) -> Result<LoadedScan, String> {
    match scans.len() {
        0 => return Err("No NIfTI file was given.".into()),
        1 => {
            return Err(format!(
                "Only one scan was given ({}); give the image and its label map together.",
                scans[0].0
            ));
        }
        _ => {}
    }
    let values: Vec<Option<usize>> = scans.iter().map(|(_, v)| label_values(v)).collect();
    let candidates: Vec<usize> = (0..scans.len()).filter(|&i| values[i].is_some()).collect();
    let named: Vec<usize> = candidates
        .iter()
        .copied()
        .filter(|&i| sounds_like_labels(&scans[i].0))
        .collect();
    let label_index = match (candidates.len(), named.len()) {
        // Neither of two holds labels: pairing gives the sentence naming the bad voxel.
        (0, _) if scans.len() == 2 => 1,
        (0, _) => {
            return Err(format!(
                "None of the {} scans is a label map (small non-negative integers).",
                scans.len()
            ));
        }
        (1, _) => candidates[0],
        (_, 1) => named[0],
        // Two scans that could both be labels: the one with fewer values.
        _ if scans.len() == 2 => {
            if values[0] < values[1] {
                0
            } else {
                1
            }
        }
        _ => {
            let names: Vec<&str> = candidates.iter().map(|&i| scans[i].0.as_str()).collect();
            return Err(format!(
                "Several scans could be the label map ({}); give one, or name it with \
                 \u{201c}seg\u{201d} or \u{201c}label\u{201d}.",
                names.join(", ")
            ));
        }
    };
    let label = scans.remove(label_index);
    stack_channels(scans, label, channels, warnings_from)
}

/// A case's images (one or more, on the label map's grid) as the channels of one scan with its
/// label map: in BraTS's order ([`channel_order`]); only those named in `channels` (file
/// names), if given.
pub fn stack_channels(
    scans: Vec<(String, Volume)>,
    (label_name, labels): (String, Volume),
    channels: Option<&[String]>,
    warnings_from: &[String],
) -> Result<LoadedScan, String> {
    let mut names: Vec<String> = scans.iter().map(|(name, _)| name.clone()).collect();
    let offered: Vec<String> = channel_order(&names)
        .into_iter()
        .map(|i| names[i].clone())
        .collect();
    if scans.is_empty() {
        return Err(format!("{label_name} came without an image."));
    }
    // One image is checked against its label map by `load_pair`, with sentences of its own.
    for (name, image) in scans.iter().filter(|_| names.len() > 1) {
        if image.dims != labels.dims || !same_grid(&image.affine, &labels.affine) {
            return Err(format!(
                "{name} ({}) and {label_name} ({}) do not lie on the same grid; a case's files \
                 must share their dims and affine.",
                describe_grid(image),
                describe_grid(&labels)
            ));
        }
    }
    let mut order = channel_order(&names);
    if let Some(wanted) = channels {
        if let Some(missing) = wanted.iter().find(|w| !names.contains(w)) {
            return Err(format!(
                "{missing} is not among this case's images ({}).",
                names.join(", ")
            ));
        }
        order.retain(|&i| wanted.contains(&names[i]));
        if order.is_empty() {
            return Err("Keep at least one of the case's images as an input channel.".into());
        }
    }
    let mut images: Vec<Option<(String, Volume)>> = scans.into_iter().map(Some).collect();
    let mut chosen: Vec<(String, Volume)> = order
        .iter()
        .map(|&i| images[i].take().expect("each image once"))
        .collect();
    drop(images); // images left out: their files stay with the page, to pick again
    names = chosen.iter().map(|(name, _)| name.clone()).collect();
    let (image_name, image) = chosen.remove(0);
    let mut scan = load_pair(image_name, image, label_name, labels, warnings_from)?;
    // Grown once to its size: growing by doubling would copy the planes over and over, and a
    // wasm worker's memory keeps its peak (four BraTS modalities are 143 MB as f32).
    let more: usize = chosen.iter().map(|(_, extra)| extra.data.len()).sum();
    scan.volume.image.reserve_exact(more);
    for (name, extra) in chosen {
        // On the label map's grid (checked above), so on the first image's too.
        scan.warnings
            .extend(extra.warnings.iter().map(|w| format!("{name}: {w}")));
        scan.volume.image.extend(extra.data);
        scan.volume.channels += 1;
    }
    scan.modalities = names;
    scan.images = offered;
    Ok(scan)
}

/// "240×240×155, origin (0.0, 239.0, 0.0)".
fn describe_grid(volume: &Volume) -> String {
    let [x, y, z] = volume.dims;
    let origin = [0, 1, 2].map(|r| volume.affine[r][3]);
    format!(
        "{x}×{y}×{z}, origin ({:.1}, {:.1}, {:.1})",
        origin[0], origin[1], origin[2]
    )
}

/// True when two voxel-to-world matrices agree beyond rounding (0.1 % of a voxel, or of the
/// origin's magnitude: headers store them as 32-bit floats).
fn same_grid(a: &[[f64; 4]; 4], b: &[[f64; 4]; 4]) -> bool {
    a.iter().flatten().zip(b.iter().flatten()).all(|(x, y)| {
        let scale = x.abs().max(y.abs()).max(1.0);
        (x - y).abs() <= 1e-3 * scale
    })
}

/// The image and the label map, each given on its own.
pub fn load_pair(
    image_name: String,
    mut image: Volume,
    label_name: String,
    labels: Volume,
    warnings_from: &[String],
) -> Result<LoadedScan, String> {
    // The intensities move into `volume.image` (they live once).
    let (volume, mapping) = pair_image_and_labels_moving(&mut image, &labels)
        .map_err(|error| format!("{label_name} as the label map of {image_name}: {error}"))?;
    if !same_grid(&image.affine, &labels.affine) {
        return Err(format!(
            "{label_name} and {image_name} have the same size but lie differently in space \
             (their affines differ: {:?} vs {:?}); give the label map made for this image.",
            &labels.affine[..3],
            &image.affine[..3]
        ));
    }
    let mut warnings = warnings_from.to_vec();
    for (name, scan) in [(&image_name, &image), (&label_name, &labels)] {
        warnings.extend(scan.warnings.iter().map(|w| format!("{name}: {w}")));
    }
    let convention = mapping.brats_convention(&[&image_name, &label_name]);
    let class_names = mapping.class_names(convention);
    let mut notes: Vec<String> = convention
        .map(|c| c.describe().to_string())
        .into_iter()
        .collect();
    notes.append(&mut warnings);
    let warnings = notes;
    Ok(LoadedScan {
        image,
        volume,
        mapping,
        class_names,
        demo: false,
        modalities: vec![image_name.clone()],
        images: vec![image_name.clone()],
        image_name,
        label_name,
        warnings,
        source: None,
    })
}

/// Files dropped together, in any order: an image and its label map (four files for
/// `.hdr`/`.img` pairs), or a case's modalities with its label map.
pub fn load_dropped(files: &[NamedFile], limits: &Limits) -> Result<LoadedScan, String> {
    load_case(files, limits, None)
}

/// [`load_dropped`], with only the images named in `channels` (file names) as input channels.
pub fn load_case(
    files: &[NamedFile],
    limits: &Limits,
    channels: Option<&[String]>,
) -> Result<LoadedScan, String> {
    let scans = read_scans_traced(files, limits)?;
    let origins: std::collections::HashMap<String, Origin> = scans
        .iter()
        .map(|(name, _, origin)| (name.clone(), origin.clone()))
        .collect();
    // Two images of one name could not be told apart when read again: such a case keeps its
    // intensities.
    let unique = origins.len() == scans.len();
    let scans = scans.into_iter().map(|(name, volume, _)| (name, volume));
    let mut scan = sort_case(scans.collect(), channels, &[])?;
    if unique {
        let channels = scan.modalities.iter().map(|name| origins[name].clone());
        scan.source = Some(ImageSource::new(files, channels, *limits));
    }
    Ok(scan)
}

/// The built-in demo set: `cases` phantoms of `size`³ (seeds 7, 8, …), each with the four
/// BraTS modalities as channels (no one of them separates every class), the last held out.
pub fn demo_cases(size: usize, cases: usize) -> Result<super::Dataset, String> {
    use super::phantom::{PHANTOM_CLASSES, PhantomModality, phantom_with};
    let size = size.clamp(32, 128);
    let kinds = PhantomModality::BRATS.map(|(kind, _)| kind);
    let cases = (0..cases.clamp(1, 8))
        .map(|index| {
            let name = format!("phantom_{index:03}");
            let volume = phantom_with([size; 3], 7 + index as u64, &kinds);
            let modalities: Vec<String> = PhantomModality::BRATS
                .iter()
                .map(|(_, suffix)| format!("{name}_{suffix}"))
                .collect();
            let scan = LoadedScan {
                image: Volume::from_data(volume.dims, 1.0, Vec::new()),
                mapping: LabelMapping {
                    values: (0..volume.classes as i64).collect(),
                },
                volume,
                image_name: format!("{name} (built in, 4 modalities)"),
                label_name: format!("{name} labels"),
                demo: true,
                images: modalities.clone(),
                modalities,
                class_names: PHANTOM_CLASSES.map(String::from).to_vec(),
                warnings: Vec::new(),
                source: None,
            };
            super::Case { name, scan }
        })
        .collect();
    super::Dataset::new(cases, None)
}

/// The built-in demo: the seeded phantom with its geometry (1 mm voxels).
pub fn demo_scan(size: usize) -> LoadedScan {
    let volume = super::phantom(super::PhantomConfig {
        size,
        ..Default::default()
    });
    let image = Volume::from_data(volume.dims, 1.0, Vec::new());
    LoadedScan {
        image,
        mapping: LabelMapping {
            values: (0..volume.classes as i64).collect(),
        },
        volume,
        image_name: format!("phantom {size}³ (built in)"),
        label_name: "phantom labels".into(),
        demo: true,
        modalities: Vec::new(),
        images: Vec::new(),
        class_names: super::phantom::PHANTOM_CLASSES.map(String::from).to_vec(),
        warnings: Vec::new(),
        source: None,
    }
}
