//! Shows which device trains, or why the CPU fallback is used.

use leptos::prelude::*;

use crate::backend::{ComputeDevice, format_bytes};

#[component]
pub fn DevicePanel(compute: ReadSignal<Option<ComputeDevice>>) -> impl IntoView {
    move || match compute.get() {
        None => view! {
            <section class="panel device" data-test="device" aria-busy="true">
                <h2>"7 · Device"</h2>
                <p>"Starting WebGPU…"</p>
            </section>
        }
        .into_any(),
        Some(compute) => {
            let slow_adapter = (compute.is_slow() && compute.fallback_reason.is_none()).then(|| {
                view! {
                    <p class="banner note" data-test="slow-banner">
                        "This WebGPU adapter is a software implementation (no GPU is being used), "
                        "so each step takes about a second even for small nets and blocks the page "
                        "while it runs. The CPU backend is usually faster here (Settings → Train on)."
                    </p>
                }
            });
            let adapter = compute.adapter;
            view! {
                <section class="panel device" data-test="device">
                    <h2>"7 · Device"</h2>
                    {slow_adapter}
                    <dl>
                        <dt>"Backend"</dt>
                        <dd data-test="backend">{adapter.backend.label()}</dd>
                        <dt>"Adapter"</dt>
                        <dd data-test="adapter-name">{adapter.name}</dd>
                        <dt>"Architecture"</dt>
                        <dd>{if adapter.architecture.is_empty() {
                            "not reported".to_string()
                        } else {
                            adapter.architecture
                        }}</dd>
                        <dt>"Software / fallback"</dt>
                        <dd data-test="software">{if adapter.software { "yes" } else { "no" }}</dd>
                        <dt>"Max buffer"</dt>
                        <dd>{adapter.max_buffer_size.map(format_bytes).unwrap_or_else(|| "no limit (CPU)".into())}</dd>
                    </dl>
                </section>
            }
            .into_any()
        }
    }
}
