//! Any bytes, as a .nii(.gz) or as a .hdr/.img pair: the reader returns a sentence or a volume,
//! never panics, never allocates past its limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../src/volume/nifti.rs"]
#[allow(dead_code)]
mod nifti;

fuzz_target!(|data: &[u8]| {
    // A limit of 64 MiB keeps the fuzzer's memory small; the checks are the same.
    let limits = nifti::Limits {
        max_f32_bytes: 64 << 20,
    };
    let _ = nifti::read_nifti(data, &limits);
    let split = data.first().map_or(0, |&b| b as usize * 4).min(data.len());
    let _ = nifti::read_nifti_pair(&data[..split], &data[split..], &limits);
});
