//! The GPU kernel choices that `gdl-lab train --backend wgpu` and `gdl-lab bench --tune` tuned,
//! kept in a JSON file in the cache folder (`$GDL_LAB_CACHE`, else `$XDG_CACHE_HOME/gdl-lab`,
//! else `~/.cache/gdl-lab`), so that the next run on the same adapter and settings skips the
//! pass. The page keeps the same records in the browser's local storage.

use std::path::PathBuf;

use crate::engine::protocol::{KeptTuning, TuningReport, update_kept};

/// The file, when a cache folder can be named.
pub fn store_path() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    let folder = var("GDL_LAB_CACHE")
        .map(PathBuf::from)
        .or_else(|| var("XDG_CACHE_HOME").map(|cache| PathBuf::from(cache).join("gdl-lab")))
        .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".cache/gdl-lab")))?;
    Some(folder.join("gpu-kernels.json"))
}

/// The kept choices; none when there is no file, and none (with a warning) when it cannot be
/// read: a pass then runs again and writes a good file.
pub fn load() -> Vec<KeptTuning> {
    let Some(path) = store_path() else {
        return Vec::new();
    };
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    serde_json::from_str(&text).unwrap_or_else(|error| {
        eprintln!(
            "warning: {} is not a list of kernel choices ({error}); the GPU's kernels will be \
             tuned again",
            path.display()
        );
        Vec::new()
    })
}

/// Keeps `report`'s choice (and drops what it drops) in the file; a sentence when it cannot.
pub fn keep(report: &TuningReport) -> Result<(), String> {
    if report.keep.is_none() && report.forget.is_none() {
        return Ok(());
    }
    let path = store_path().ok_or("no cache folder: set GDL_LAB_CACHE or HOME")?;
    let kept = update_kept(load(), report);
    let text = serde_json::to_string_pretty(&kept).map_err(|error| error.to_string())?;
    let write = || -> std::io::Result<()> {
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder)?;
        }
        // Written beside and renamed over, so that a run killed mid-write leaves the old file.
        let partial = path.with_extension("json.partial");
        std::fs::write(&partial, text)?;
        std::fs::rename(&partial, &path)
    };
    write().map_err(|error| {
        format!(
            "cannot keep the kernel choice in {}: {error}",
            path.display()
        )
    })
}
