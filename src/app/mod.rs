//! The page: Leptos components only. Nothing numeric lives here; the components start a
//! training session and draw what its step reports say.

mod device_panel;
mod train_demo;

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::backend::{self, ComputeDevice};
pub use device_panel::DevicePanel;
pub use train_demo::TrainDemo;

/// The whole page. WebGPU is initialised once, when the page mounts.
#[component]
pub fn App() -> impl IntoView {
    let compute = RwSignal::new(None::<ComputeDevice>);
    spawn_local(async move {
        let device = backend::acquire().await;
        web_sys::console::log_1(&format!("gdl-lab device: {}", device.describe()).into());
        compute.set(Some(device));
    });
    view! {
        <header>
            <h1>"gdl-lab"</h1>
            <p class="tagline">
                "Train a 3D segmentation net on your own GPU and watch its losses. "
                "Your scans never leave this page."
            </p>
        </header>
        <main>
            <DevicePanel compute=compute.read_only() />
            <TrainDemo compute=compute.read_only() />
        </main>
    }
}
