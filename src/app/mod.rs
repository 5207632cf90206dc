//! The page: Leptos components only, thin over the engine, which runs in a Web Worker. The
//! state lives in one `PageState` behind the URL hash; the trainer carries commands to the
//! worker and its events back into signals; each panel draws one concern.

mod apply_panel;
mod browser;
mod charts;
mod controls;
mod device_panel;
mod engine_download;
mod explain;
mod lab;
mod loader;
mod offline_copy;
mod run_files;
mod run_panel;
mod scenarios;
mod slices;
mod start_weights;
mod trainer;
mod worker_link;

use leptos::prelude::*;

use crate::view::PageState;
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

/// The whole page. The worker starts (and finds the devices) when the page mounts.
#[component]
pub fn App() -> impl IntoView {
    let (initial, link_error) = state_from_url();
    let state = RwSignal::new(initial);
    let link_error = RwSignal::new(link_error);
    let trainer = Trainer::new(state);
    browser::expose_test_hooks(trainer);

    // The URL and the worker follow the state (the URL without adding history entries) ...
    Effect::new(move |_| {
        browser::set_hash(&state.with(PageState::to_hash));
        trainer.configure();
    });
    // ... and a link pasted into this tab's address bar (which changes only the hash) is applied.
    let _ = window_event_listener(leptos::ev::hashchange, move |_| {
        let (next, error) = state_from_url();
        link_error.set(error);
        let current = state.get_untracked();
        if next != current {
            if !current.same_run(&next) {
                trainer.reset();
            }
            state.set(next);
        }
    });
    let clip = Signal::derive(move || state.with(|s| s.config.clip));

    view! {
        <header>
            <h1>"gdl-lab"</h1>
            <p class="tagline">
                "Train a 3D segmentation net on your own GPU and watch the mixed loss hand over "
                "from cross-entropy to the Generalized Dice Loss. Your scans never leave this page."
            </p>
            <scenarios::Scenarios state trainer />
        </header>
        {move || trainer.devices.get().and_then(|d| d.gpu_unavailable).map(|reason| view! {
            <p class="banner warning" role="alert" data-test="fallback-banner">
                "WebGPU is not available, so training runs on the CPU (burn's flex backend, "
                "compiled into the page's worker). Reason: " {reason}
            </p>
        })}
        {move || link_error.get().map(|message| view! {
            <p class="banner warning" role="alert" data-test="link-error">{message}</p>
        })}
        {move || trainer.crashed.get().map(|message| view! {
            <div class="banner error" role="alert" data-test="worker-crashed">
                <p>
                    "The training worker stopped: " {message} ". The page, the scan, the loss "
                    "history and the weights of the last saved step are kept."
                </p>
                <button data-test="resume-worker" on:click=move |_| trainer.restart_worker(None)>
                    "Resume"
                </button>
            </div>
        })}
        <offline_copy::OfflineCopy trainer />
        <main>
            <div class="column left">
                <Loader state trainer />
                <RunPanel state trainer />
                <Controls state trainer />
                <DevicePanel trainer />
            </div>
            <div class="column right">
                <Charts trainer clip />
                <Slices trainer />
                <Lab state trainer />
            </div>
        </main>
    }
}
