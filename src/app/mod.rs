//! The page: Leptos components only, thin over a training session. The state lives in one
//! `PageState` behind the URL hash; the trainer runs the session; each panel draws one concern.

mod browser;
mod charts;
mod controls;
mod device_panel;
mod lab;
mod loader;
mod run_panel;
mod slices;
mod trainer;

use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::backend::{self, ComputeDevice};
use crate::view::PageState;
use crate::volume::LoadedScan;
pub use charts::{Charts, LineChart};
pub use controls::Controls;
pub use device_panel::DevicePanel;
pub use lab::{Lab, misuse_key};
pub use loader::Loader;
pub use run_panel::RunPanel;
pub use slices::Slices;
pub use trainer::Trainer;

/// The state a link describes; a sentence when the link's settings could not be used.
fn state_from_url() -> (PageState, Option<String>) {
    match PageState::from_hash(&browser::hash()) {
        Ok(state) => (state, None),
        Err(message) => (
            PageState::default(),
            Some(format!("The link's settings were not used: {message}")),
        ),
    }
}

/// The whole page. WebGPU is initialised once, when the page mounts.
#[component]
pub fn App() -> impl IntoView {
    let gpu = RwSignal::new(None::<ComputeDevice>);
    let (initial, link_error) = state_from_url();
    let state = RwSignal::new(initial);
    let link_error = RwSignal::new(link_error);
    let scan = RwSignal::new(None::<Arc<LoadedScan>>);
    let trainer = Trainer::new(state, scan, gpu);

    spawn_local(async move {
        let device = backend::acquire().await;
        web_sys::console::log_1(&format!("gdl-lab device: {}", device.describe()).into());
        gpu.set(Some(device));
    });
    // The URL follows the state (without adding history entries) ...
    Effect::new(move |_| browser::set_hash(&state.with(PageState::to_hash)));
    // ... and a link pasted into this tab's address bar (which changes only the hash) is applied.
    let _ = window_event_listener(leptos::ev::hashchange, move |_| {
        let (next, error) = state_from_url();
        link_error.set(error);
        if next != state.get_untracked() {
            trainer.reset();
            state.set(next);
        }
    });
    let gpu_read = gpu.read_only();
    let clip = Signal::derive(move || state.with(|s| s.config.clip));

    view! {
        <header>
            <h1>"gdl-lab"</h1>
            <p class="tagline">
                "Train a 3D segmentation net on your own GPU and watch the mixed loss hand over "
                "from cross-entropy to the Generalized Dice Loss. Your scans never leave this page."
            </p>
        </header>
        {move || gpu.get().and_then(|g| g.fallback_reason).map(|reason| view! {
            <p class="banner warning" role="alert" data-test="fallback-banner">
                "WebGPU is not available, so training runs on the CPU (burn's flex backend, "
                "compiled into this page). Reason: " {reason}
            </p>
        })}
        {move || link_error.get().map(|message| view! {
            <p class="banner warning" role="alert" data-test="link-error">{message}</p>
        })}
        <main>
            <div class="column left">
                <Loader scan state trainer />
                <RunPanel state scan gpu trainer />
                <Controls state trainer />
                <DevicePanel compute=gpu_read />
            </div>
            <div class="column right">
                <Charts trainer clip />
                <Slices scan trainer />
                <Lab state trainer />
            </div>
        </main>
    }
}
