//! `cfg(engine)`: the training engine (burn) is compiled in: always natively, and in the
//! browser when the `engine` feature is on (the worker; the page's own wasm leaves it out).
//!
//! The worker's wasm also gets a larger stack than Rust's 1 MiB default: the engine's nested
//! futures (a probe inside a command inside the worker's loop) and flex's kernels run deeper
//! than the page ever did, and on wasm an overflow is a "memory access out of bounds" trap.
//!
//! `GDL_LAB_SOURCE_HASH`: which sources this build is, for the page and worker's messages.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(engine)");
    let wasm = std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32");
    if !wasm || std::env::var_os("CARGO_FEATURE_ENGINE").is_some() {
        println!("cargo:rustc-cfg=engine");
    }
    if wasm {
        println!("cargo:rustc-link-arg-bin=gdl-lab-worker=-zstack-size=8388608");
    }
    println!("cargo:rustc-env=GDL_LAB_SOURCE_HASH={:016x}", source_hash());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src");
}

/// A hash of every source file: the page's wasm and the worker's are built by two runs of cargo,
/// and their messages (postcard: no field names) are only readable between builds of the same
/// sources, so each message carries it (`engine::protocol`). std's SipHash with its fixed keys
/// gives the same value to both runs (one compiler); nothing here needs a cryptographic hash.
fn source_hash() -> u64 {
    use std::hash::{Hash, Hasher};
    fn visit(dir: &std::path::Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src/ is readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                visit(&path, files);
            } else {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    visit(std::path::Path::new("src"), &mut files);
    files.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for file in files {
        file.hash(&mut hasher);
        std::fs::read(&file).unwrap_or_default().hash(&mut hasher);
    }
    hasher.finish()
}
