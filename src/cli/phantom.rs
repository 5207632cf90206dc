//! `gdl-lab phantom`: the built-in brain-tumour phantom as NIfTI files, one image with its
//! labels, or case folders of several MRI modalities (a set to train and validate on).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::Dims;
use crate::volume::nifti::{Voxels, write_nifti_gz};
use crate::volume::phantom::{PhantomModality, phantom_of_dims, phantom_with};
use crate::volume::{LabelledVolume, PhantomConfig, Volume, phantom, write_label_map};

#[derive(Args, Debug)]
pub struct PhantomArgs {
    /// Edge of the cubic volume, 32–128 voxels
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(32..=128))]
    size: u16,
    /// Any shape instead of a cube, e.g. 240x240x155 (BraTS's), 4–1024 voxels per edge
    #[arg(long)]
    dims: Option<Dims>,
    /// A BraTS-style case: int16 images, labels 0, 1, 2, 4 (BraTS 2021: necrotic core,
    /// oedema, enhancing tumour) and BraTS's 1 mm affine (x and y flipped)
    #[arg(long)]
    brats: bool,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// MRI modalities per case: 1 (the demo's single image) or 4 (T1, T1 with contrast, T2 and
    /// FLAIR, each showing the tumour as MRI does, so that no one of them separates every
    /// class); with 4, case folders are written into --out
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=4))]
    modalities: u8,
    /// Cases to write into --out, one folder each (case_000, case_001, …), seeds seed, seed+1, …
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1000))]
    cases: Option<u16>,
    /// The folder for --cases or --modalities 4
    #[arg(long, required_unless_present_all = ["image", "label"])]
    out: Option<PathBuf>,
    /// Where to write the image (.nii.gz, float32; int16 with --brats)
    #[arg(long, requires = "label", conflicts_with = "out")]
    image: Option<PathBuf>,
    /// Where to write the labels (.nii.gz, uint8: 0 background, 1 necrotic core, 2 oedema,
    /// 3 enhancing tumour)
    #[arg(long, requires = "image")]
    label: Option<PathBuf>,
}

/// BraTS's voxel-to-world matrix: 1 mm voxels, x and y flipped (the files are stored in LPS
/// order), the origin at the first voxel's x and the last row's y, as nibabel reports it.
fn brats_affine(dims: [usize; 3]) -> [[f64; 4]; 4] {
    [
        [-1.0, 0.0, 0.0, 0.0],
        [0.0, -1.0, 0.0, dims[1] as f64 - 1.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
}

pub fn write_phantom(args: &PhantomArgs) -> ExitCode {
    let dims = args.dims.map_or([args.size as usize; 3], |Dims(dims)| dims);
    let written = match (&args.out, &args.image, &args.label) {
        (Some(out), _, _) => write_cases(args, dims, out),
        (None, Some(image), Some(label)) if args.modalities == 1 => {
            let volume = one_image(dims, args.seed);
            write_case(&volume, std::slice::from_ref(image), label, args.brats).map(|()| {
                serde_json::json!({"dims": volume.dims, "class_voxels": volume.class_counts()})
            })
        }
        _ => Err("--modalities above 1 writes case folders: give --out".into()),
    };
    match written {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The demo's single image, as `phantom` has always written it.
fn one_image(dims: [usize; 3], seed: u64) -> LabelledVolume {
    if dims[0] == dims[1] && dims[1] == dims[2] && (32..=128).contains(&dims[0]) {
        phantom(PhantomConfig {
            size: dims[0],
            seed,
        })
    } else {
        phantom_of_dims(dims, seed)
    }
}

/// `--cases N` (default 1) case folders in `out`, each with its modalities and `_seg`.
fn write_cases(
    args: &PhantomArgs,
    dims: [usize; 3],
    out: &Path,
) -> Result<serde_json::Value, String> {
    let modalities: Vec<(PhantomModality, &str)> = match args.modalities {
        1 => vec![(PhantomModality::Demo, "image")],
        4 => PhantomModality::BRATS.to_vec(),
        n => return Err(format!("--modalities takes 1 or 4, not {n}")),
    };
    let kinds: Vec<PhantomModality> = modalities.iter().map(|(kind, _)| *kind).collect();
    let mut cases = Vec::new();
    for index in 0..args.cases.unwrap_or(1) as u64 {
        let name = format!("case_{index:03}");
        let folder = out.join(&name);
        std::fs::create_dir_all(&folder)
            .map_err(|error| format!("cannot make {}: {error}", folder.display()))?;
        let volume = phantom_with(dims, args.seed + index, &kinds);
        let images: Vec<PathBuf> = modalities
            .iter()
            .map(|(_, suffix)| folder.join(format!("{name}_{suffix}.nii.gz")))
            .collect();
        write_case(
            &volume,
            &images,
            &folder.join(format!("{name}_seg.nii.gz")),
            args.brats,
        )?;
        cases.push(serde_json::json!({"name": name, "class_voxels": volume.class_counts()}));
    }
    Ok(serde_json::json!({
        "dims": dims,
        "modalities": modalities.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        "cases": cases,
    }))
}

/// Each channel of `volume` to its path in `images`, and its labels to `label`.
fn write_case(
    volume: &LabelledVolume,
    images: &[PathBuf],
    label: &Path,
    brats: bool,
) -> Result<(), String> {
    let mut geometry = Volume::from_data(volume.dims, 1.0, Vec::new());
    if brats {
        geometry = geometry.with_affine(brats_affine(volume.dims));
    }
    let mut files = Vec::new();
    for (path, channel) in images.iter().zip(volume.channel_planes()) {
        let bytes = if brats {
            // Intensities as a scanner's integers.
            let intensities: Vec<i16> = channel
                .iter()
                .map(|&v| (v * 1000.0).round().clamp(0.0, i16::MAX as f32) as i16)
                .collect();
            write_nifti_gz(Voxels::Int16(&intensities), &geometry)
        } else {
            write_nifti_gz(Voxels::Float32(channel), &geometry)
        };
        files.push((path.as_path(), bytes));
    }
    let labels = if brats {
        // Class 3 (enhancing) is label 4 in BraTS 2021.
        let labels: Vec<u16> = volume
            .labels
            .iter()
            .map(|&l| if l == 3 { 4 } else { l as u16 })
            .collect();
        write_label_map(&labels, &geometry)
    } else {
        write_nifti_gz(Voxels::Uint8(&volume.labels), &geometry)
    };
    files.push((label, labels));
    for (path, bytes) in files {
        let bytes =
            bytes.map_err(|message| format!("cannot write {}: {message}", path.display()))?;
        std::fs::write(path, bytes)
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    }
    Ok(())
}
