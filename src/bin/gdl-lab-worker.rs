//! The page's training worker (built by Trunk beside the page): the engine off the page's
//! thread. It has no use outside the browser.

#[cfg(target_arch = "wasm32")]
fn main() {
    gdl_lab::worker::start();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    eprintln!("gdl-lab-worker runs only inside the page, in the browser; use `gdl-lab` here.");
    std::process::ExitCode::from(2)
}
