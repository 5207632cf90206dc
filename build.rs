//! The worker's wasm gets a larger stack than Rust's 1 MiB default: the engine's nested
//! futures (a probe inside a command inside the worker's loop) and flex's kernels run deeper
//! than the page ever did, and on wasm an overflow is a "memory access out of bounds" trap.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-bin=gdl-lab-worker=-zstack-size=8388608");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
