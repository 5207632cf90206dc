//! Which devices the worker found, what the auto probe measured on each, and which one trains.

use leptos::prelude::*;

use super::trainer::Trainer;
use crate::backend::{AdapterSummary, format_bytes};

fn adapter_rows(adapter: AdapterSummary, test: &'static str) -> impl IntoView {
    view! {
        <dt>"Backend"</dt>
        <dd data-test=format!("{test}-backend")>{adapter.backend.label()}</dd>
        <dt>"Adapter"</dt>
        <dd data-test=format!("{test}-name")>{adapter.name}</dd>
        <dt>"Architecture"</dt>
        <dd>{if adapter.architecture.is_empty() { "not reported".to_string() } else { adapter.architecture }}</dd>
        <dt>"Software / fallback"</dt>
        <dd data-test=format!("{test}-software")>{if adapter.software { "yes" } else { "no" }}</dd>
        <dt>"Max buffer"</dt>
        <dd>{adapter.max_buffer_size.map(format_bytes).unwrap_or_else(|| "no limit (CPU)".into())}</dd>
    }
}

#[component]
pub fn DevicePanel(trainer: Trainer) -> impl IntoView {
    move || match trainer.devices.get() {
        None => view! {
            <section class="panel device" data-test="device" aria-busy="true">
                <h2>"7 · Device"</h2>
                <p>"Starting the training worker and WebGPU…"</p>
            </section>
        }
        .into_any(),
        Some(report) => {
            let gpu = match report.gpu {
                Some(adapter) => view! { <dl>{adapter_rows(adapter, "gpu")}</dl> }.into_any(),
                None => view! {
                    <p data-test="gpu-missing">
                        "No WebGPU device: " {report.gpu_unavailable.unwrap_or_default()}
                    </p>
                }
                .into_any(),
            };
            view! {
                <section class="panel device" data-test="device">
                    <h2>"7 · Device"</h2>
                    <p class="probe" data-test="probe" aria-live="polite">
                        {move || match trainer.probe.get() {
                            Some(probe) => probe.sentence,
                            None => "With “Train on: Auto”, the first step is preceded by a few \
                                     timed steps on each device; the faster one trains."
                                .into(),
                        }}
                    </p>
                    {move || trainer.tuning.get().map(|sentence| view! {
                        <p class="probe" data-test="tuning">"GPU kernels: " {sentence}</p>
                    })}
                    <p>"Training on: " <span data-test="run-device-panel">{move || trainer.device_label.get()}</span></p>
                    <h3>"GPU"</h3>
                    {gpu}
                    <h3>"CPU"</h3>
                    <dl>{adapter_rows(report.cpu, "cpu")}</dl>
                </section>
            }
            .into_any()
        }
    }
}
