//! Refuse, before anything runs, a session whose largest GPU buffer the device cannot hold.
//!
//! WebGPU and Vulkan cap a single buffer (`maxBufferSize`: 4 GiB on an H200, 1 GiB on Chrome's
//! SwiftShader, often 256 MiB to 2 GiB on laptops). A layer's activation that outgrows it
//! fails inside wgpu, after the user has waited for shaders to compile, and issue 12 saw such
//! sizes end in a segmentation fault. The im2col path's column buffers are capped by
//! [`crate::model::conv::MAX_COLUMN_BYTES`], which every WebGPU device binds (larger layers run
//! in slabs), and the tiled kernels make none, so what remains is the widest full-resolution
//! activation of the batch (and its gradient, the same size).

use crate::backend::format_bytes;
use crate::train::TrainingConfig;

/// Bytes of the largest single buffer a training step of `config` asks for with `classes`
/// classes; `None` when the product does not fit in a `u64`.
pub fn largest_buffer_bytes(config: &TrainingConfig, classes: usize) -> Option<u64> {
    let channels = config.model.widest_full_resolution_channels().max(classes) as u64;
    let patch = config.patch as u64;
    let activation = patch
        .checked_pow(3)?
        .checked_mul(config.batch as u64)?
        .checked_mul(channels)?
        .checked_mul(4)?;
    Some(activation)
}

/// A sentence naming the setting to lower when the largest buffer exceeds `max_buffer_bytes`
/// (`None`: no limit known, as on the CPU).
pub fn check_largest_buffer(
    config: &TrainingConfig,
    classes: usize,
    max_buffer_bytes: Option<u64>,
) -> Result<(), String> {
    let Some(limit) = max_buffer_bytes else {
        return Ok(());
    };
    let fits = |patch: usize| {
        let trial = TrainingConfig {
            patch,
            ..config.clone()
        };
        largest_buffer_bytes(&trial, classes).is_some_and(|bytes| bytes <= limit)
    };
    if fits(config.patch) {
        return Ok(());
    }
    let needed = largest_buffer_bytes(config, classes)
        .map(format_bytes)
        .unwrap_or_else(|| "more memory than can be counted".into());
    let step = config.model.edge_multiple();
    let largest_patch = (step..config.patch)
        .step_by(step)
        .rev()
        .find(|&patch| fits(patch));
    let advice = match largest_patch {
        Some(patch) => format!("use a patch of at most {patch} voxels, or a smaller batch"),
        None => "use a smaller batch".into(),
    };
    Err(format!(
        "A {}³ patch with a batch of {} needs a {needed} buffer for the {} net's widest layer, \
         more than this device's largest buffer ({}): {advice}.",
        config.patch,
        config.batch,
        config.model.name(),
        format_bytes(limit),
    ))
}
