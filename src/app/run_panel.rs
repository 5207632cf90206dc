//! Play, pause, one step, reset, predict; where the run stands; the exports; the notices for
//! slow adapters and failures.

use leptos::prelude::*;

use super::apply_panel::ApplyPanel;
use super::browser;
use super::run_files::RunFiles;
use super::start_weights::StartWeights;
use super::trainer::Trainer;
use crate::engine::Command;
use crate::view::{BackendChoice, PageState};

/// A step slower than this on settings larger than the small ones suggests the small ones.
const SLOW_STEP_MS: f64 = 700.0;
/// The first step of a session is not judged: it allocates every buffer, in each worker that
/// takes a share of the batch too (the defaults' first step on two CPU workers took 0.7 s in
/// the page, the next ones 0.17 s).
const FIRST_JUDGED_STEP: usize = 2;

#[component]
pub fn RunPanel(state: RwSignal<PageState>, trainer: Trainer) -> impl IntoView {
    let history = trainer.history;
    let last = move || history.with(|h| h.last().cloned());
    let total_steps = move || state.with(|s| s.config.total_steps());
    let export_error = trainer.export_error;
    let link = RwSignal::new(None::<(String, bool)>);

    let ready = move || trainer.devices.get().is_some() && trainer.scan.get().is_some();
    let slow = move || {
        let large = state.with(|s| *s != s.small());
        let slow_steps =
            last().is_some_and(|r| r.step >= FIRST_JUDGED_STEP && r.millis > SLOW_STEP_MS);
        large && slow_steps
    };
    let status = move || {
        if trainer.crashed.get().is_some() {
            return "the training worker stopped".to_string();
        }
        if trainer.engine_download.with(Option::is_some) {
            return "waiting for the training engine (its progress is above)".into();
        }
        if trainer.devices.get().is_none() {
            return "starting the training worker…".to_string();
        }
        if let Some(failure) = trainer.failure.get() {
            return format!("stopped: {}", failure.message);
        }
        if let Some(progress) = trainer.progress.get() {
            return format!("{}…", progress.task);
        }
        let done = history.with(|h| h.len());
        if trainer.running.get() {
            if done == 0 {
                "first step: building the net and compiling kernels…".into()
            } else {
                "training…".into()
            }
        } else if done > 0 && done >= total_steps() {
            "finished".into()
        } else if done > 0 {
            "paused".into()
        } else {
            "ready".into()
        }
    };

    // Files the worker made are saved as they arrive.
    Effect::new(move |_| {
        if let Some(file) = trainer.download.get() {
            let result = browser::download(&file.name, &file.mime, &file.bytes);
            export_error.set(result.err());
        }
    });
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
                        "Each step takes "
                        {move || last().map(|r| format!("{:.1} s", r.millis / 1000.0))}
                        " on this device with these settings. Smaller settings keep it interactive."
                    </p>
                    <button data-test="use-small" on:click=move |_| {
                        trainer.reset();
                        state.update(|s| *s = s.small());
                    }>"Use small settings"</button>
                </div>
            })}
            <div class="buttons">
                // While the engine downloads, Play is its progress bar.
                {move || match trainer.engine_download.get() {
                    Some(download) => view! {
                        <span class="engine-download" data-test="engine-download">
                            <label for="engine-progress">{download.sentence()}</label>
                            <progress id="engine-progress" max=download.total_bytes.max(1.0)
                                value=download.measured().then_some(download.done_bytes)>
                            </progress>
                        </span>
                    }.into_any(),
                    None => view! {
                        <button data-test="play" disabled=move || !ready() || trainer.running.get()
                            on:click=move |_| trainer.play()>"▶ Play"</button>
                    }.into_any(),
                }}
                <button data-test="pause" disabled=move || !trainer.running.get()
                    on:click=move |_| trainer.pause()>"❚❚ Pause"</button>
                <button data-test="step-once" disabled=move || !ready() || trainer.running.get()
                    on:click=move |_| trainer.step_once()>"Step"</button>
                <button data-test="reset" on:click=move |_| trainer.reset()>"Reset"</button>
                <button data-test="predict" disabled=move || !ready()
                    on:click=move |_| trainer.predict()>"Predict now"</button>
            </div>
            {move || trainer.progress.get().map(|p| {
                let cancellable = p.task.starts_with("predicting");
                view! {
                    <div class="progress" data-test="progress">
                        <label for="task-progress">{p.task.clone()}</label>
                        <progress id="task-progress" max=p.total value=p.done></progress>
                        {cancellable.then(|| view! {
                            <button data-test="cancel" on:click=move |_| trainer.cancel()>"Cancel"</button>
                        })}
                    </div>
                }
            })}
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
                                "The run is kept as it was after its last good step. Go on from "
                                "there on the CPU, or on a fresh GPU device (a new worker, from "
                                "the last saved step)."
                            </p>
                            <button data-test="resume-cpu" on:click=move |_| trainer.resume_on_cpu()>
                                "Resume on the CPU"
                            </button>
                            <button data-test="resume-gpu" on:click=move |_| {
                                trainer.restart_worker(Some(BackendChoice::Gpu));
                                trainer.play();
                            }>"Resume on the GPU"</button>
                        })}
                    </div>
                }
            })}
            <div class="buttons exports">
                <button data-test="export-prediction" on:click=move |_| trainer.export(Command::ExportPrediction)>"Prediction (.nii.gz)"</button>
                <button data-test="export-history" on:click=move |_| trainer.export(Command::ExportHistory)>"Loss history (.csv)"</button>
                <button data-test="export-weights" on:click=move |_| trainer.export(Command::ExportWeights)>"Weights (.safetensors)"</button>
                <button data-test="export-pytorch" title="The weights under PyTorch's names and gdl_lab_model.py: the same nets, this run's mixed loss and a NIfTI loader" on:click=move |_| trainer.export(Command::ExportPytorch)>"Export for PyTorch"</button>
                <button data-test="copy-link" on:click=copy_link>"Copy link"</button>
            </div>
            <StartWeights trainer />
            <RunFiles trainer />
            <ApplyPanel trainer />
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
