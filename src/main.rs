//! In the browser this mounts the page; natively it is the `gdl-lab` CLI.

#[cfg(target_arch = "wasm32")]
fn main() {
    gdl_lab::backend::run_static_constructors();
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(gdl_lab::app::App);
}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    gdl_lab::cli::main()
}
