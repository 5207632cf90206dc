//! In the browser this mounts the page (the engine runs in its worker, `gdl-lab-worker`);
//! natively it is the `gdl-lab` CLI.

#[cfg(target_arch = "wasm32")]
fn main() {
    // The page's wasm links the same crate as the worker's, CubeCL's registrations included
    // (rustc keeps every `#[used]` static), so its constructors must run once here too.
    gdl_lab::backend::run_static_constructors();
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(gdl_lab::app::App);
}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    gdl_lab::cli::main()
}
