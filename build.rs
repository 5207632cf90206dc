//! `cfg(engine)`: the training engine (burn) is compiled in: always natively, and in the
//! browser when the `engine` feature is on (the worker; the page's own wasm leaves it out).
//!
//! The worker's wasm also gets a larger stack than Rust's 1 MiB default: the engine's nested
//! futures (a probe inside a command inside the worker's loop) and flex's kernels run deeper
//! than the page ever did, and on wasm an overflow is a "memory access out of bounds" trap.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(engine)");
    let wasm = std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32");
    if !wasm || std::env::var_os("CARGO_FEATURE_ENGINE").is_some() {
        println!("cargo:rustc-cfg=engine");
    }
    if wasm {
        println!("cargo:rustc-link-arg-bin=gdl-lab-worker=-zstack-size=8388608");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
