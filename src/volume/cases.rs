//! Several cases at once, as people keep them: files of several cases side by side (grouped by
//! their shared name stem), a folder of case folders (BraTS), or the Medical Segmentation
//! Decathlon's task folder (`imagesTr/` with 4D images, `labelsTr/`, `dataset.json`).

use super::dataset::{Case, Dataset};
use super::files::{NamedFile, load_case, read_scans, stack_channels};
use super::nifti::Limits;
use super::source::ImageSource;

/// A file's name without its folder and its extensions (`.nii.gz`, `.hdr`, …).
pub fn base_name(name: &str) -> &str {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let lower = base.to_ascii_lowercase();
    let mut end = base.len();
    for suffix in [".gz", ".nii", ".hdr", ".img"] {
        if lower[..end].ends_with(suffix) {
            end -= suffix.len();
        }
    }
    &base[..end]
}

/// The case a file belongs to: its [`base_name`] without its last `_`/`-` token
/// (`BraTS2021_00000_t1ce.nii.gz` → `BraTS2021_00000`); a name of one token is its own case.
pub fn case_stem(name: &str) -> String {
    let stem = base_name(name);
    match stem.rfind(['_', '-']) {
        Some(cut) if cut > 0 => stem[..cut].to_string(),
        _ => stem.to_string(),
    }
}

/// Files of several cases, grouped by [`case_stem`] (a path's folder counts first, so files
/// dropped as folders group by folder), in name order.
pub fn group_by_case(files: Vec<NamedFile>) -> Vec<(String, Vec<NamedFile>)> {
    let mut groups: std::collections::BTreeMap<String, Vec<NamedFile>> = Default::default();
    for file in files {
        groups.entry(case_key(&file.name)).or_default().push(file);
    }
    groups.into_iter().collect()
}

/// The case a file's path puts it in: its folder, else its [`case_stem`].
fn case_key(path: &str) -> String {
    let folder = path
        .rsplit_once(['/', '\\'])
        .and_then(|(folder, _)| folder.rsplit(['/', '\\']).find(|part| !part.is_empty()));
    match folder {
        Some(folder) => folder.to_string(),
        None => case_stem(path),
    }
}

/// The files named without the folders they came in.
fn without_folders(files: Vec<NamedFile>) -> Vec<NamedFile> {
    files
        .into_iter()
        .map(|file| NamedFile {
            name: file
                .name
                .rsplit(['/', '\\'])
                .next()
                .unwrap_or(&file.name)
                .to_string(),
            bytes: file.bytes,
        })
        .collect()
}

/// Each group of files as one case ([`load_case`]: every modality a channel); a failure names
/// the case. Every case lets go of its intensities as soon as it is read (they are read again
/// from its files when shown and prepared, [`super::LoadedScan::full_volume`]), so that reading
/// a set of full-size cases holds one case's channels at a time rather than all of them.
pub fn load_cases(
    groups: Vec<(String, Vec<NamedFile>)>,
    limits: &Limits,
) -> Result<Vec<Case>, String> {
    load_cases_with(groups, limits, &mut |_| {})
}

/// [`load_cases`], handing each case to `each` while it still has its intensities (the engine
/// prepares it then, rather than reading it all again later).
pub fn load_cases_with(
    groups: Vec<(String, Vec<NamedFile>)>,
    limits: &Limits,
    each: &mut dyn FnMut(&Case),
) -> Result<Vec<Case>, String> {
    let mut cases = Vec::with_capacity(groups.len());
    for (name, files) in groups {
        let scan = load_case(&without_folders(files), limits, None)
            .map_err(|error| format!("Case {name}: {error}"))?;
        let mut case = Case { name, scan };
        each(&case);
        case.scan.release_image();
        cases.push(case);
    }
    Ok(cases)
}

/// Files dropped together: several cases when they fall into two or more groups
/// ([`group_by_case`]) of at least two files each (every case needs an image and its label
/// map), else one case of all of them, with only the images named in `channels` (file names)
/// if given.
pub fn load_dropped_cases(
    files: Vec<NamedFile>,
    limits: &Limits,
    channels: Option<&[String]>,
) -> Result<Dataset, String> {
    load_dropped_cases_with(files, limits, channels, &mut |_| {})
}

/// [`load_dropped_cases`], handing each case of a set to `each` while it still has its
/// intensities ([`load_cases_with`]); a single case keeps them anyway.
pub fn load_dropped_cases_with(
    files: Vec<NamedFile>,
    limits: &Limits,
    channels: Option<&[String]>,
    each: &mut dyn FnMut(&Case),
) -> Result<Dataset, String> {
    // Grouped by name first: the files' bytes are not copied to find out.
    let mut sizes: std::collections::BTreeMap<String, usize> = Default::default();
    for file in &files {
        *sizes.entry(case_key(&file.name)).or_default() += 1;
    }
    if sizes.len() >= 2 && sizes.values().all(|&count| count >= 2) {
        return Dataset::new(load_cases_with(group_by_case(files), limits, each)?, None);
    }
    load_case(&without_folders(files), limits, channels).map(Dataset::single)
}

/// The Decathlon's `dataset.json`, the parts gdl-lab reads.
#[derive(serde::Deserialize)]
struct DecathlonIndex {
    /// Channel index → modality name, e.g. {"0": "FLAIR", "1": "T1w", …}.
    modality: std::collections::BTreeMap<String, String>,
    /// Label value → name.
    labels: std::collections::BTreeMap<String, String>,
    training: Vec<DecathlonPair>,
}

#[derive(serde::Deserialize)]
struct DecathlonPair {
    image: String,
    label: String,
}

/// A `dataset.json` map of numbers (as strings) to names, by number; a sentence for a key that
/// is not a number.
fn numbered<N: std::str::FromStr + Ord>(
    map: &std::collections::BTreeMap<String, String>,
    what: &str,
) -> Result<Vec<(N, String)>, String> {
    let mut pairs = map
        .iter()
        .map(|(key, name)| {
            key.parse::<N>()
                .map(|number| (number, name.clone()))
                .map_err(|_| format!("dataset.json names {what} {key:?}; expected a number"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(pairs)
}

/// A Decathlon task from its `dataset.json` and a reader of the files it names (paths relative
/// to the task folder): each 4D image split into its modalities in file order, named
/// `{case}_{index}_{modality}` so that the channels keep that order; the label names and values
/// as `dataset.json` gives them.
pub fn decathlon_task(
    index_json: &str,
    read: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>,
    limits: &Limits,
) -> Result<Dataset, String> {
    let index: DecathlonIndex = serde_json::from_str(index_json)
        .map_err(|error| format!("dataset.json cannot be read: {error}"))?;
    let modalities: Vec<(usize, String)> = numbered(&index.modality, "modality")?;
    let label_names: Vec<(i64, String)> = numbered(&index.labels, "label")?;
    if index.training.is_empty() {
        return Err("dataset.json lists no training case.".into());
    }
    let mut cases = Vec::new();
    for pair in &index.training {
        let name = base_name(&pair.image).to_string();
        let image = NamedFile {
            name: pair.image.clone(),
            bytes: read(&pair.image)?,
        };
        let label = NamedFile {
            name: pair.label.clone(),
            bytes: read(&pair.label)?,
        };
        let image = [image];
        let mut channels = read_scans(&image, limits).map_err(|e| format!("Case {name}: {e}"))?;
        if channels.len() != modalities.len() {
            return Err(format!(
                "Case {name}: {} holds {} volumes, but dataset.json names {} modalities ({}).",
                pair.image,
                channels.len(),
                modalities.len(),
                modalities
                    .iter()
                    .map(|(_, m)| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for ((volume_name, _), (at, modality)) in channels.iter_mut().zip(&modalities) {
            *volume_name = format!("{name}_{at:04}_{modality}.nii.gz");
        }
        let mut labels = read_scans(&[label], limits).map_err(|e| format!("Case {name}: {e}"))?;
        let label = labels.remove(0);
        let in_file: Vec<String> = channels.iter().map(|(name, _)| name.clone()).collect();
        let mut scan = stack_channels(channels, label, None, &[])
            .map_err(|error| format!("Case {name}: {error}"))?;
        // Read again from the 4D file when prepared: each channel is the volume of its name.
        let volumes = scan.modalities.iter().map(|modality| {
            let at = in_file.iter().position(|n| n == modality);
            (vec![0], at.expect("a channel of this file"))
        });
        scan.source = Some(ImageSource::new(&image, volumes, *limits));
        scan.release_image();
        cases.push(Case { name, scan });
    }
    Dataset::new(cases, Some(&label_names))
}

/// Cases from a folder on disk: a Decathlon task (it has `dataset.json`), a folder of case
/// folders (one per case, BraTS's layout), or the files of several cases side by side.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_cases_folder(dir: &std::path::Path, limits: &Limits) -> Result<Dataset, String> {
    let read_file = |path: &std::path::Path| {
        std::fs::read(path).map_err(|error| format!("Cannot read {}: {error}.", path.display()))
    };
    let index = dir.join("dataset.json");
    if index.exists() {
        let json = String::from_utf8(read_file(&index)?)
            .map_err(|_| "dataset.json is not UTF-8 text.".to_string())?;
        return decathlon_task(
            &json,
            &mut |relative| read_file(&dir.join(relative)),
            limits,
        );
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|error| format!("Cannot read the folder {}: {error}.", dir.display()))?;
    let mut paths: Vec<std::path::PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    paths.sort();
    let is_nifti = |path: &std::path::Path| {
        let name = path.to_string_lossy().to_ascii_lowercase();
        [".nii", ".nii.gz", ".hdr", ".img", ".hdr.gz", ".img.gz"]
            .iter()
            .any(|ext| name.ends_with(ext))
    };
    let files_in = |folder: &std::path::Path| -> Result<Vec<NamedFile>, String> {
        let mut files = Vec::new();
        let entries = std::fs::read_dir(folder)
            .map_err(|error| format!("Cannot read the folder {}: {error}.", folder.display()))?;
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths.into_iter().filter(|p| p.is_file() && is_nifti(p)) {
            let name = path.file_name().map(|n| n.to_string_lossy().to_string());
            files.push(NamedFile {
                name: name.unwrap_or_default(),
                bytes: read_file(&path)?,
            });
        }
        Ok(files)
    };
    let folders: Vec<&std::path::PathBuf> = paths.iter().filter(|p| p.is_dir()).collect();
    let groups = if folders.is_empty() {
        group_by_case(files_in(dir)?)
    } else {
        let mut groups = Vec::new();
        for folder in folders {
            let files = files_in(folder)?;
            if !files.is_empty() {
                let name = folder.file_name().map(|n| n.to_string_lossy().to_string());
                groups.push((name.unwrap_or_default(), files));
            }
        }
        groups
    };
    if groups.is_empty() {
        return Err(format!(
            "{} holds no NIfTI case: give a folder of case folders, or a Decathlon task folder \
             with its dataset.json.",
            dir.display()
        ));
    }
    Dataset::new(load_cases(groups, limits)?, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_group_by_their_case() {
        assert_eq!(case_stem("BraTS2021_00000_t1ce.nii.gz"), "BraTS2021_00000");
        assert_eq!(
            case_stem("BraTS-GLI-00000-000-t2f.nii.gz"),
            "BraTS-GLI-00000-000"
        );
        assert_eq!(case_stem("brain.hdr"), "brain");
        let file = |name: &str| NamedFile {
            name: name.into(),
            bytes: Vec::new(),
        };
        let groups = group_by_case(vec![
            file("b_t1.nii.gz"),
            file("a_seg.nii.gz"),
            file("a_t1.nii.gz"),
            file("b_seg.nii.gz"),
            file("c/flair.nii"),
            file("/d/e_seg.nii.gz"),
        ]);
        let names: Vec<(&str, usize)> = groups.iter().map(|(n, f)| (n.as_str(), f.len())).collect();
        assert_eq!(names, [("a", 2), ("b", 2), ("c", 1), ("d", 1)]);
        // Files dropped side by side (a leading `/`, no folder) group by their stems.
        let flat = group_by_case(vec![
            file("/x_t1.nii"),
            file("/x_seg.nii"),
            file("/y_t1.nii"),
        ]);
        let names: Vec<(&str, usize)> = flat.iter().map(|(n, f)| (n.as_str(), f.len())).collect();
        assert_eq!(names, [("x", 2), ("y", 1)]);
    }
}
