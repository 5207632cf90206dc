//! Play, pause, one step, reset, predict; where the run stands; the exports; the notices for
//! slow adapters and failures.

use std::sync::Arc;

use leptos::prelude::*;

use super::browser;
use super::trainer::Trainer;
use crate::backend::ComputeDevice;
use crate::report::history_csv;
use crate::view::{BackendChoice, PageState};
use crate::volume::{LoadedScan, write_label_map};

#[component]
pub fn RunPanel(
    state: RwSignal<PageState>,
    scan: RwSignal<Option<Arc<LoadedScan>>>,
    gpu: RwSignal<Option<ComputeDevice>>,
    trainer: Trainer,
) -> impl IntoView {
    let history = trainer.history;
    let last = move || history.with(|h| h.last().cloned());
    let total_steps = move || state.with(|s| s.config.total_steps());
    let export_error = RwSignal::new(None::<String>);
    let link = RwSignal::new(None::<(String, bool)>);

    let ready = move || gpu.get().is_some() && scan.get().is_some();
    let slow = move || {
        let cpu = state.with(|s| s.page.backend) == BackendChoice::Cpu;
        let software = gpu.get().is_some_and(|g| g.is_slow());
        let large = state.with(|s| *s != s.small());
        (cpu || software) && large
    };
    let status = move || {
        if gpu.get().is_none() {
            return "starting the device…".to_string();
        }
        if let Some(failure) = trainer.failure.get() {
            return format!("stopped: {}", failure.message);
        }
        let done = history.with(|h| h.len());
        if trainer.running.get() {
            if done == 0 {
                "first step: building the net and compiling GPU kernels…".into()
            } else {
                "training…".into()
            }
        } else if trainer.busy.get() {
            "working…".into()
        } else if done > 0 && done >= total_steps() {
            "finished".into()
        } else if done > 0 {
            "paused".into()
        } else {
            "ready".into()
        }
    };

    let download_prediction = move |_| {
        let (Some(scan), Some(evaluation)) =
            (scan.get_untracked(), trainer.evaluation.get_untracked())
        else {
            export_error.set(Some("Predict the volume first (“Predict now”).".into()));
            return;
        };
        let labels = scan.mapping.file_values(&evaluation.labels);
        let bytes = write_label_map(&labels, &scan.image);
        let result = browser::download("prediction.nii.gz", "application/gzip", &bytes);
        export_error.set(result.err());
    };
    let download_history = move |_| {
        let csv = history.with_untracked(|h| history_csv(h));
        let result = browser::download("gdl-lab-history.csv", "text/csv", csv.as_bytes());
        export_error.set(result.err());
    };
    let download_weights = move |_| {
        if trainer.running.get_untracked() {
            export_error.set(Some("Pause training first.".into()));
            return;
        }
        trainer.export_weights(move |result| {
            let result = result.and_then(|(name, bytes)| {
                browser::download(&name, "application/octet-stream", &bytes)
            });
            export_error.set(result.err());
        });
    };
    let copy_link = move |_| {
        let url = browser::href();
        leptos::task::spawn_local(async move {
            let copied = browser::copy_text(&url).await.is_ok();
            link.set(Some((url, copied)));
        });
    };

    let readout = move |field: &'static str| {
        move || {
            let Some(r) = last() else {
                return "–".to_string();
            };
            match field {
                "epoch" => r.epoch.to_string(),
                "lambda" => format!("{:.2}", r.lambda),
                "total" => format!("{:.5}", r.total),
                "warmup" => format!("{:.5}", r.warmup),
                "gdl" => format!("{:.5}", r.gdl),
                "millis" => format!("{:.0}", r.millis),
                _ => String::new(),
            }
        }
    };

    view! {
        <section class="panel run" aria-labelledby="run-title">
            <h2 id="run-title">"3 · Train"</h2>
            {move || slow().then(|| view! {
                <div class="banner note" data-test="slow-notice">
                    <p>
                        "This device is slow for these settings (a software WebGPU adapter such as "
                        "SwiftShader, or the CPU): one step of the default U-Net on 2 × 32³ patches "
                        "takes seconds. Smaller settings keep it interactive."
                    </p>
                    <button data-test="use-small" on:click=move |_| {
                        trainer.reset();
                        state.update(|s| *s = s.small());
                    }>"Use small settings"</button>
                    {move || (gpu.get().is_some_and(|g| g.is_gpu_backend() && g.is_slow())
                        && state.with(|s| s.page.backend) == BackendChoice::Gpu).then(|| view! {
                        <button data-test="use-cpu" on:click=move |_| {
                            trainer.reset();
                            state.update(|s| s.page.backend = BackendChoice::Cpu);
                        }>"Train on the CPU instead (often faster than a software GPU)"</button>
                    })}
                </div>
            })}
            <div class="buttons">
                <button data-test="play" disabled=move || !ready() || trainer.running.get()
                    on:click=move |_| trainer.play()>"▶ Play"</button>
                <button data-test="pause" disabled=move || !trainer.running.get()
                    on:click=move |_| trainer.pause()>"❚❚ Pause"</button>
                <button data-test="step-once" disabled=move || !ready() || trainer.running.get() || trainer.busy.get()
                    on:click=move |_| trainer.step_once()>"Step"</button>
                <button data-test="reset" on:click=move |_| trainer.reset()>"Reset"</button>
                <button data-test="predict" disabled=move || !ready() || trainer.running.get() || trainer.busy.get()
                    on:click=move |_| trainer.predict()>"Predict now"</button>
            </div>
            <p class="status" data-test="status" aria-live="polite">{status}</p>
            <dl class="readout">
                <dt>"step"</dt>
                <dd><span data-test="step">{move || history.with(|h| h.len())}</span>{move || format!(" of {}", total_steps())}</dd>
                <dt>"epoch"</dt><dd data-test="epoch">{readout("epoch")}</dd>
                <dt>"λ"</dt><dd data-test="lambda">{readout("lambda")}</dd>
                <dt>"total"</dt><dd data-test="loss">{readout("total")}</dd>
                <dt>{move || last().map(|r| r.warmup_loss.name()).unwrap_or("warm-up")}</dt>
                <dd data-test="warmup">{readout("warmup")}</dd>
                <dt>"GDL"</dt><dd data-test="gdl">{readout("gdl")}</dd>
                <dt>"ms / step"</dt><dd data-test="millis">{readout("millis")}</dd>
                <dt>"device"</dt><dd data-test="run-device">{move || trainer.device_label.get()}</dd>
                <dt>"net"</dt><dd data-test="run-net">{move || trainer.net_label.get()}</dd>
            </dl>
            {move || last().and_then(|r| r.anatomy.explanation).map(|sentence| view! {
                <p class="banner warning" role="status" data-test="monitor">{sentence}</p>
            })}
            {move || trainer.failure.get().map(|failure| {
                let lost = failure.device_lost;
                view! {
                    <div class="banner error" role="alert" data-test="train-error">
                        <p>{failure.message}</p>
                        {lost.then(|| view! {
                            <p>
                                "Resume re-initialises WebGPU by reloading the page: the settings are "
                                "kept in the link; the training progress and dropped files are not."
                            </p>
                            <button data-test="resume-reload" on:click=move |_| browser::reload()>"Resume on the GPU (reload)"</button>
                            <button data-test="resume-cpu" on:click=move |_| {
                                trainer.reset();
                                state.update(|s| s.page.backend = BackendChoice::Cpu);
                                trainer.play();
                            }>"Resume on the CPU (restarts the run)"</button>
                        })}
                    </div>
                }
            })}
            <div class="buttons exports">
                <button data-test="export-prediction" on:click=download_prediction>"Prediction (.nii.gz)"</button>
                <button data-test="export-history" on:click=download_history>"Loss history (.csv)"</button>
                <button data-test="export-weights" on:click=download_weights>"Weights (.safetensors)"</button>
                <button data-test="copy-link" on:click=copy_link>"Copy link"</button>
            </div>
            {move || export_error.get().map(|message| view! {
                <p class="banner error" role="alert" data-test="export-error">{message}</p>
            })}
            {move || link.get().map(|(url, copied)| view! {
                <p class="link">
                    <label for="share-link">{if copied { "Copied: " } else { "Copy this link: " }}</label>
                    <input id="share-link" readonly prop:value=url data-test="share-link" />
                </p>
            })}
        </section>
    }
}
