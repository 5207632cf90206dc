//! The memory a session needs, estimated before anything runs, and refused with a sentence
//! naming the setting to lower when it exceeds what the machine has: wasm32's 4 GiB address
//! space in the browser, the machine's memory natively. (The GPU's largest single buffer is
//! checked by [`super::buffers`].) Every product is checked: no link or flag can overflow it.

use crate::backend::format_bytes;
use crate::model::ModelKind;
use crate::train::TrainingConfig;

/// Floats per voxel of a patch that one forward pass keeps for the backward pass: every
/// layer's output, at its resolution (the U-Net's lower levels count 1/8 and 1/64). Counted
/// from the nets' definitions in `model/`.
fn activation_channels(model: ModelKind) -> u64 {
    match model {
        // conv 8, ReLU 8, conv 16, ReLU 16.
        ModelKind::Simple => 48,
        // conv + ReLU at 16, 32, 64.
        ModelKind::Target => 224,
        // Two conv/norm/act blocks at 8 (48), the lower levels (~37 at full resolution),
        // the up path's upsampled tensors, concatenations and blocks at 8/16 (~80).
        ModelKind::Unet => 165,
    }
}

/// The estimate, by part, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// The scan as loaded and its working copy: intensities (f32), classes (u8) and the
    /// sampler's index of foreground voxels.
    pub scan: u64,
    /// One training step: the batch, its labels and one-hot masks, the activations kept for the
    /// backward pass and their gradients, the loss's class planes.
    pub step: u64,
    /// The whole-volume prediction: probability sums on the working grid, the classes mapped
    /// back to the scan's grid.
    pub prediction: u64,
}

impl MemoryEstimate {
    pub fn total(&self) -> u64 {
        self.scan
            .saturating_add(self.step)
            .saturating_add(self.prediction)
    }
}

/// What a session of `config` needs for a scan of `scan_voxels` trained on `working_voxels`
/// with `classes` classes; `None` when a product does not fit in a `u64`.
pub fn estimate(
    config: &TrainingConfig,
    classes: usize,
    scan_voxels: usize,
    working_voxels: usize,
) -> Option<MemoryEstimate> {
    let classes = classes as u64;
    let (scan_voxels, working_voxels) = (scan_voxels as u64, working_voxels as u64);
    // f32 intensities + u8 classes, and their copy as a message to the page; the working copy
    // adds an 8-byte index per voxel at worst.
    let scan = scan_voxels
        .checked_mul(10)?
        .checked_add(working_voxels.checked_mul(5 + 8)?)?;
    let patch_voxels = (config.patch as u64)
        .checked_pow(3)?
        .checked_mul(config.batch as u64)?;
    // Activations and their gradients (×2), the input, the label plane and its one-hot masks
    // (2 + C), and about eight class planes in the loss (softmax, products, their gradients).
    let floats_per_voxel = activation_channels(config.model)
        .checked_mul(2)?
        .checked_add(classes.checked_mul(9)?)?
        .checked_add(2)?;
    let step = patch_voxels.checked_mul(floats_per_voxel)?.checked_mul(4)?;
    // Sums and weights on the working grid and their copy as a message (the probabilities stay
    // on the working grid), and the classes mapped back to the scan's grid.
    let prediction = working_voxels
        .checked_mul(classes)?
        .checked_mul(12)?
        .checked_add(scan_voxels.checked_mul(2)?)?;
    Some(MemoryEstimate {
        scan,
        step,
        prediction,
    })
}

/// One case of a set, as the memory check counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaseSize {
    /// Voxels of the case as loaded (each channel).
    pub scan_voxels: usize,
    /// Voxels of its working grid.
    pub working_voxels: usize,
    /// Input channels (modalities).
    pub channels: usize,
}

impl CaseSize {
    /// The case as loaded and as prepared: f32 intensities per channel, u8 classes, the
    /// sampler's foreground index; its copy for the page.
    fn bytes(&self) -> Option<u64> {
        let extra = (self.channels.max(1) as u64 - 1).checked_mul(4)?;
        (self.scan_voxels as u64)
            .checked_mul(10u64.checked_add(extra)?)?
            .checked_add((self.working_voxels as u64).checked_mul(13u64.checked_add(extra)?)?)
    }
}

/// [`check_memory`] for a set of cases: every case is held as loaded and as prepared, one
/// step and one prediction (of the largest) at a time. The refusal says how many of the cases
/// fit.
pub fn check_cases_memory(
    config: &TrainingConfig,
    classes: usize,
    cases: &[CaseSize],
    limit: Option<u64>,
) -> Result<(), String> {
    let largest = cases
        .iter()
        .copied()
        .max_by_key(|case| case.scan_voxels)
        .unwrap_or(CaseSize {
            scan_voxels: 0,
            working_voxels: 0,
            channels: 1,
        });
    check_memory(
        config,
        classes,
        largest.scan_voxels,
        largest.working_voxels,
        limit,
    )?;
    let Some(limit) = limit else {
        return Ok(());
    };
    let one = estimate(config, classes, largest.scan_voxels, largest.working_voxels)
        .expect("counted by check_memory");
    let base = one.step.saturating_add(one.prediction);
    let mut total = base;
    let mut fitting = 0;
    for case in cases {
        total = total.saturating_add(case.bytes().unwrap_or(u64::MAX));
        if total <= limit {
            fitting += 1;
        }
    }
    if total <= limit {
        return Ok(());
    }
    if fitting == 0 {
        return Err(format!(
            "This case's {} channels need about {} but {} are available here; {}.",
            largest.channels,
            format_bytes(total),
            format_bytes(limit),
            if config.crop && config.resample {
                "leave out some of its modalities, or give a smaller scan"
            } else {
                "turn crop and resample on"
            }
        ));
    }
    Err(format!(
        "These {} cases need about {} but {} are available here; {fitting} of them fit: load \
         at most {fitting} cases{}.",
        cases.len(),
        format_bytes(total),
        format_bytes(limit),
        if config.crop && config.resample {
            ""
        } else {
            ", or turn crop and resample on"
        }
    ))
}

/// The memory a session may use here: 3 GiB of the 4 GiB a wasm32 worker can address (the
/// rest holds the module, the allocator's slack and the messages); natively, the machine's
/// memory (`None` where it cannot be read: no check).
pub fn memory_limit() -> Option<u64> {
    if cfg!(target_arch = "wasm32") {
        return Some(3 << 30);
    }
    machine_memory()
}

/// MemTotal from `/proc/meminfo` (Linux); read by hand, a crate for one number is not worth it.
fn machine_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// A sentence naming what to lower when the session would need more than `limit` bytes.
pub fn check_memory(
    config: &TrainingConfig,
    classes: usize,
    scan_voxels: usize,
    working_voxels: usize,
    limit: Option<u64>,
) -> Result<(), String> {
    let Some(limit) = limit else {
        return Ok(());
    };
    let Some(estimate) = estimate(config, classes, scan_voxels, working_voxels) else {
        return Err(format!(
            "A {}³ patch with a batch of {} on a scan of {scan_voxels} voxels needs more memory \
             than can be counted; lower patch or batch.",
            config.patch, config.batch
        ));
    };
    if estimate.total() <= limit {
        return Ok(());
    }
    let advice = if estimate.step >= estimate.scan.saturating_add(estimate.prediction) {
        format!(
            "training on {}³ patches, {} per step, needs about {} for one step; lower patch \
             or batch",
            config.patch,
            config.batch,
            format_bytes(estimate.step)
        )
    } else if !(config.crop && config.resample) {
        format!(
            "the scan and its prediction need about {}; turn crop and resample on",
            format_bytes(estimate.scan.saturating_add(estimate.prediction))
        )
    } else {
        format!(
            "the scan of {scan_voxels} voxels and its prediction need about {}; give a smaller \
             scan",
            format_bytes(estimate.scan.saturating_add(estimate.prediction))
        )
    };
    Err(format!(
        "This session needs about {} but {} are available here: {advice}.",
        format_bytes(estimate.total()),
        format_bytes(limit)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WASM: Option<u64> = Some(3 << 30);

    #[test]
    fn the_default_session_on_a_brats_case_fits_the_browser() {
        let config = TrainingConfig::default();
        assert_eq!(
            check_memory(&config, 4, 240 * 240 * 155, 1_000_000, WASM),
            Ok(())
        );
    }

    #[test]
    fn patch_256_with_batch_64_is_refused_with_the_settings_to_lower() {
        let config = TrainingConfig {
            patch: 256,
            batch: 64,
            ..TrainingConfig::default()
        };
        let refusal = check_memory(&config, 4, 64 * 64 * 64, 64 * 64 * 64, WASM).unwrap_err();
        assert!(refusal.contains("lower patch or batch"), "{refusal}");
        // Natively too, on any machine with less than a terabyte.
        assert!(check_memory(&config, 4, 1, 1, Some(1 << 40)).is_err());
    }

    #[test]
    fn an_uncroppable_huge_scan_names_crop_and_resample() {
        let config = TrainingConfig {
            crop: false,
            resample: false,
            ..TrainingConfig::default()
        };
        let voxels = 512 * 512 * 300;
        let refusal = check_memory(&config, 4, voxels, voxels, Some(1 << 30)).unwrap_err();
        assert!(refusal.contains("turn crop and resample on"), "{refusal}");
    }

    #[test]
    fn a_set_that_does_not_fit_says_how_many_cases_do() {
        let config = TrainingConfig::default();
        let brats = CaseSize {
            scan_voxels: 240 * 240 * 155,
            working_voxels: 1_000_000,
            channels: 4,
        };
        assert_eq!(check_cases_memory(&config, 4, &[brats; 4], WASM), Ok(()));
        let refusal = check_cases_memory(&config, 4, &[brats; 40], WASM).unwrap_err();
        assert!(
            refusal.starts_with("These 40 cases need about"),
            "{refusal}"
        );
        let fitting: usize = refusal
            .split(" of them fit")
            .next()
            .and_then(|head| head.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("a count");
        assert!((4..40).contains(&fitting), "{refusal}");
        assert!(check_cases_memory(&config, 4, &[brats; 1], WASM).is_ok());
        let fewer = vec![brats; fitting];
        assert_eq!(check_cases_memory(&config, 4, &fewer, WASM), Ok(()));
        let more = vec![brats; fitting + 1];
        assert!(check_cases_memory(&config, 4, &more, WASM).is_err());
    }

    #[test]
    fn products_that_overflow_give_a_sentence() {
        let config = TrainingConfig {
            patch: usize::MAX / 2,
            ..TrainingConfig::default()
        };
        let refusal = check_memory(&config, 4, 10, 10, WASM).unwrap_err();
        assert!(
            refusal.contains("more memory than can be counted"),
            "{refusal}"
        );
    }
}
