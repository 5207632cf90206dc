//! In the browser this mounts the page (the engine runs in its worker, `gdl-lab-worker`);
//! natively it is the `gdl-lab` CLI.

#[cfg(target_arch = "wasm32")]
fn main() {
    // Built without the engine, the page's wasm has no constructors of its own to run; should
    // a dependency register some, they must run once, not on every call from JavaScript.
    gdl_lab::backend::run_static_constructors();
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(gdl_lab::app::App);
}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    gdl_lab::cli::main()
}
