//! The "Train demo" button: trains the seed's Simple3DModel with the mixed loss on the
//! synthetic volume, one step at a time, showing step, loss and ms/step as they come.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::backend::ComputeDevice;
use crate::report::StepReport;
use crate::train::{TrainingConfig, TrainingSession};
use crate::volume::{SyntheticConfig, synthetic_volume};

/// Volume size and step count for the demo: small on software adapters, where a 16³ step takes
/// about a second, larger on a real GPU. The patch is the whole volume.
fn demo_plan(compute: &ComputeDevice) -> (usize, usize) {
    if compute.is_slow() {
        (16, 30)
    } else {
        (32, 200)
    }
}

/// Lets the browser paint and handle input between steps.
async fn yield_to_browser() {
    gloo_timers::future::TimeoutFuture::new(0).await;
}

#[component]
pub fn TrainDemo(compute: ReadSignal<Option<ComputeDevice>>) -> impl IntoView {
    let running = RwSignal::new(false);
    let stop_requested = RwSignal::new(false);
    let last = RwSignal::new(None::<StepReport>);
    let first_loss = RwSignal::new(None::<f32>);
    let planned_steps = RwSignal::new(0usize);
    let volume_size = RwSignal::new(0usize);
    let error = RwSignal::new(None::<String>);

    let start = move |_| {
        let Some(compute) = compute.get_untracked() else {
            return;
        };
        if running.get_untracked() {
            return;
        }
        let (size, steps) = demo_plan(&compute);
        running.set(true);
        stop_requested.set(false);
        error.set(None);
        last.set(None);
        first_loss.set(None);
        planned_steps.set(steps);
        volume_size.set(size);
        spawn_local(async move {
            let volume = synthetic_volume(SyntheticConfig {
                size,
                ..SyntheticConfig::default()
            });
            let mut session =
                match TrainingSession::new(TrainingConfig::quick(size), &volume, &compute.device) {
                    Ok(session) => session,
                    Err(failure) => {
                        error.set(Some(failure.to_string()));
                        running.set(false);
                        return;
                    }
                };
            for _ in 0..steps {
                if stop_requested.get_untracked() {
                    break;
                }
                match session.step().await {
                    Ok(report) => {
                        if first_loss.get_untracked().is_none() {
                            first_loss.set(Some(report.total));
                        }
                        last.set(Some(report));
                    }
                    Err(failure) => {
                        error.set(Some(failure.to_string()));
                        break;
                    }
                }
                yield_to_browser().await;
            }
            running.set(false);
        });
    };

    let status = move || {
        let Some(device) = compute.get() else {
            return "waiting for the device".to_string();
        };
        if running.get() && last.get().is_none() {
            // The first step compiles every GPU kernel, which takes seconds: say so, or the
            // page looks stuck.
            if device.is_gpu_backend() {
                "first step: compiling GPU kernels…".to_string()
            } else {
                "first step…".to_string()
            }
        } else if running.get() {
            format!("training on a {0}³ volume…", volume_size.get())
        } else if last.get().is_some() {
            "done".to_string()
        } else {
            "ready".to_string()
        }
    };

    view! {
        <section class="panel train">
            <h2>"Train demo"</h2>
            <p class="hint">
                "The seed's Simple3DModel (conv 1→8→16→4) learns a synthetic 4-class volume with "
                "the mixed loss: 0.5 × BCE-with-logits for 50 steps, then the GDL."
            </p>
            <div class="buttons">
                <button
                    data-test="train"
                    on:click=start
                    disabled=move || compute.get().is_none() || running.get()
                >
                    "Train demo"
                </button>
                <button
                    data-test="stop"
                    on:click=move |_| stop_requested.set(true)
                    disabled=move || !running.get()
                >
                    "Stop"
                </button>
                <span class="status" data-test="status" aria-live="polite">{status}</span>
            </div>
            <dl class="readout">
                <dt>"Step"</dt>
                <dd data-test="step">
                    {move || last.get().map(|report| report.step.to_string()).unwrap_or("–".into())}
                </dd>
                <dd class="of">{move || format!("of {}", planned_steps.get())}</dd>
                <dt>"Loss"</dt>
                <dd data-test="loss">
                    {move || last.get().map(|report| format!("{:.5}", report.total)).unwrap_or("–".into())}
                </dd>
                <dd class="of" data-test="first-loss">
                    {move || first_loss.get().map(|loss| format!("from {loss:.5}")).unwrap_or_default()}
                </dd>
                <dt>"λ"</dt>
                <dd data-test="lambda">
                    {move || last.get().map(|report| format!("{:.2}", report.lambda)).unwrap_or("–".into())}
                </dd>
                <dd class="of">"share of the GDL"</dd>
                <dt>{move || last.get().map(|report| report.warmup_loss.name()).unwrap_or("BCE")}</dt>
                <dd data-test="warmup">
                    {move || last.get().map(|report| format!("{:.5}", report.warmup)).unwrap_or("–".into())}
                </dd>
                <dd class="of">"warm-up term"</dd>
                <dt>"GDL"</dt>
                <dd data-test="gdl">
                    {move || last.get().map(|report| format!("{:.5}", report.gdl)).unwrap_or("–".into())}
                </dd>
                <dd class="of">"in [0, 1] for valid inputs"</dd>
                <dt>"ms / step"</dt>
                <dd data-test="millis">
                    {move || last.get().map(|report| format!("{:.0}", report.millis)).unwrap_or("–".into())}
                </dd>
                <dd class="of"></dd>
            </dl>
            {move || last.get().and_then(|report| report.explanation).map(|sentence| view! {
                <p class="banner warning" role="status" data-test="monitor">{sentence}</p>
            })}
            {move || error.get().map(|message| view! {
                <p class="banner error" role="alert" data-test="train-error">{message}</p>
            })}
        </section>
    }
}
