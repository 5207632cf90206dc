//! Files as a person hands them over, read into scans: single files alone (`.nii`, `.nii.gz`,
//! a 4D file's volumes each a scan), `.hdr` with the `.img` of the same name; each scan with
//! where it came from, so that its voxels can be read again later (`super::source`).

use super::nifti::{Limits, Volume, read_nifti_channels, read_nifti_pair};

/// A file's name and contents, as the browser or the disk gives them.
#[derive(Clone, Debug)]
pub struct NamedFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Where a scan was read from: the indices of its file (or `.hdr` and `.img`) among the files
/// given, and its volume in them (a 4D file holds several).
pub(super) type Origin = (Vec<usize>, usize);

/// `brain.hdr.gz` → (`brain`, `hdr`); `brain.nii.gz` → (`brain`, `nii`).
pub(super) fn stem_and_kind(name: &str) -> (String, String) {
    let name = name.to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    match name.rsplit_once('.') {
        Some((stem, extension)) => (stem.to_string(), extension.to_string()),
        None => (name.to_string(), String::new()),
    }
}

/// Reads every scan in `files`: single files alone, `.hdr` with the `.img` of the same name.
pub fn read_scans(files: &[NamedFile], limits: &Limits) -> Result<Vec<(String, Volume)>, String> {
    Ok(read_scans_traced(files, limits)?
        .into_iter()
        .map(|(name, volume, _)| (name, volume))
        .collect())
}

/// [`read_scans`], each scan with where it came from: the indices in `files` of the file (or
/// `.hdr` and `.img`) it was read from, and its volume in that file (a 4D file holds several).
pub(super) fn read_scans_traced(
    files: &[NamedFile],
    limits: &Limits,
) -> Result<Vec<(String, Volume, Origin)>, String> {
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
                scans.push((file.name.clone(), volume, (vec![index, partner], 0)));
            }
            _ => {
                let volumes = read_nifti_channels(&file.bytes, limits)
                    .map_err(|error| format!("{}: {error}", file.name))?;
                if let [_, _, ..] = &volumes[..] {
                    // A 4D image (the Decathlon's): its volumes as the modalities of the case,
                    // named as nnU-Net names them (`case_0000`, `case_0001`, …) in file order.
                    for (at, volume) in volumes.into_iter().enumerate() {
                        // (The stem as given: lower-casing keeps the length of the name.)
                        let stem = &file.name[..stem.len()];
                        scans.push((format!("{stem}_{at:04}.nii.gz"), volume, (vec![index], at)));
                    }
                } else {
                    scans.extend(
                        volumes
                            .into_iter()
                            .map(|v| (file.name.clone(), v, (vec![index], 0))),
                    );
                }
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
