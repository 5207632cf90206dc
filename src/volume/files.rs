//! Files as a person hands them over: dropped together in any order, `.nii`, `.nii.gz` or
//! `.hdr` + `.img` pairs, sometimes misnamed. This sorts them into an image and a label map.

use super::LabelledVolume;
use super::labels::{LabelMapping, pair_image_and_labels};
use super::nifti::{Limits, Volume, read_nifti, read_nifti_pair};

/// A file's name and contents, as the browser or the disk gives them.
#[derive(Clone, Debug)]
pub struct NamedFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

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
    /// The images of the case, by file name, when it brought several (one is `image_name`).
    pub modalities: Vec<String>,
    /// A name per class for legends: the phantom's tissue names, else "label 4".
    pub class_names: Vec<String>,
    /// What the person should know, one sentence each: the label convention recognised, and
    /// warnings from reading either file.
    pub warnings: Vec<String>,
}

fn lower(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// `brain.hdr.gz` → (`brain`, `hdr`); `brain.nii.gz` → (`brain`, `nii`).
fn stem_and_kind(name: &str) -> (String, String) {
    let name = lower(name);
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    match name.rsplit_once('.') {
        Some((stem, extension)) => (stem.to_string(), extension.to_string()),
        None => (name.to_string(), String::new()),
    }
}

/// Reads every scan in `files`: single files alone, `.hdr` with the `.img` of the same name.
pub fn read_scans(files: &[NamedFile], limits: &Limits) -> Result<Vec<(String, Volume)>, String> {
    let mut scans = Vec::new();
    let mut used = vec![false; files.len()];
    for (index, file) in files.iter().enumerate() {
        let (stem, kind) = stem_and_kind(&file.name);
        match kind.as_str() {
            "img" => continue, // read with its header
            "hdr" => {
                let partner = files
                    .iter()
                    .position(|other| stem_and_kind(&other.name) == (stem.clone(), "img".into()));
                let Some(partner) = partner else {
                    return Err(format!(
                        "{} is the header of a .hdr/.img pair; give its .img file too.",
                        file.name
                    ));
                };
                used[partner] = true;
                let volume = read_nifti_pair(&file.bytes, &files[partner].bytes, limits)
                    .map_err(|error| format!("{}: {error}", file.name))?;
                scans.push((file.name.clone(), volume));
            }
            _ => {
                let volume = read_nifti(&file.bytes, limits)
                    .map_err(|error| format!("{}: {error}", file.name))?;
                scans.push((file.name.clone(), volume));
            }
        }
        used[index] = true;
    }
    if let Some(orphan) = files.iter().zip(&used).find(|(_, used)| !**used) {
        return Err(format!(
            "{} is the data of a .hdr/.img pair; give its .hdr file too.",
            orphan.0.name
        ));
    }
    Ok(scans)
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

fn sounds_like_labels(name: &str) -> bool {
    let name = lower(name);
    [
        "seg", "label", "mask", "gt", "truth", "annot", "aseg", "dseg",
    ]
    .iter()
    .any(|hint| name.contains(hint))
}

/// The modality trained on when a case brings several and none was picked: T1 with contrast
/// (it shows the enhancing rim and the necrotic core), then FLAIR (the oedema), then the first
/// by name. Names as BraTS 2021 (`_t1ce`) and 2023 (`-t1c`, `-t2f`) spell them.
fn default_modality(names: &[String]) -> usize {
    let has = |hints: &[&str]| {
        names.iter().position(|name| {
            let (stem, _) = stem_and_kind(name);
            hints.iter().any(|hint| {
                stem.ends_with(&format!("_{hint}")) || stem.ends_with(&format!("-{hint}"))
            })
        })
    };
    has(&["t1ce", "t1c", "t1gd"])
        .or_else(|| has(&["flair", "t2f"]))
        .unwrap_or(0)
}

/// Scans dropped together: one label map (found by content: the only scan of small
/// non-negative integers; among several, the one whose name says so) and one image or, for a
/// case folder (BraTS: `_t1`, `_t1ce`, `_t2`, `_flair`, `_seg`), several modalities, of which
/// `modality` (a file name) or [`default_modality`] is trained on. Every modality must lie on
/// the label map's grid.
pub fn sort_case(
    mut scans: Vec<(String, Volume)>,
    modality: Option<&str>,
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
    let (label_name, labels) = scans.remove(label_index);
    let mut names: Vec<String> = scans.iter().map(|(name, _)| name.clone()).collect();
    for (name, image) in &scans {
        if image.dims != labels.dims || !same_grid(&image.affine, &labels.affine) {
            return Err(format!(
                "{name} ({}) and {label_name} ({}) do not lie on the same grid; a case's files \
                 must share their dims and affine.",
                describe_grid(image),
                describe_grid(&labels)
            ));
        }
    }
    let chosen = match modality {
        Some(wanted) => names.iter().position(|n| n == wanted).ok_or_else(|| {
            format!(
                "{wanted} is not among this case's images ({}).",
                names.join(", ")
            )
        })?,
        None => default_modality(&names),
    };
    let (image_name, image) = scans.swap_remove(chosen);
    drop(scans); // the other modalities: their files stay with the page, to pick another
    let mut scan = load_pair(image_name, image, label_name, labels, warnings_from)?;
    names.sort();
    scan.modalities = names;
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
    let (volume, mapping) = pair_image_and_labels(&image, &labels)
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
    image.data = Vec::new();
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
        image_name,
        label_name,
        warnings,
    })
}

/// Files dropped together, in any order: an image and its label map (four files for
/// `.hdr`/`.img` pairs), or a case's modalities with its label map.
pub fn load_dropped(files: &[NamedFile], limits: &Limits) -> Result<LoadedScan, String> {
    load_case(files, limits, None)
}

/// [`load_dropped`], training on the modality named `modality` (a file name).
pub fn load_case(
    files: &[NamedFile],
    limits: &Limits,
    modality: Option<&str>,
) -> Result<LoadedScan, String> {
    sort_case(read_scans(files, limits)?, modality, &[])
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
        class_names: super::phantom::PHANTOM_CLASSES.map(String::from).to_vec(),
        warnings: Vec::new(),
    }
}
