//! Every setting as a labelled control, and play / pause / step / reset. A change that cannot
//! work is refused with the session's own sentence; one that can resets the run.

use leptos::prelude::*;

use super::trainer::Trainer;
use crate::loss::{Schedule, WarmupLoss, WeightType};
use crate::model::ModelKind;
use crate::view::{BackendChoice, ExportedWeights, PageState};
use crate::volume::Targets;

/// Applies `change` to a copy of the state; keeps it (and resets the run, unless only the
/// learning rate or a page setting changed) only if it validates.
fn apply(
    state: RwSignal<PageState>,
    error: RwSignal<Option<String>>,
    trainer: Trainer,
    change: impl FnOnce(&mut PageState) -> Result<(), String>,
) {
    let mut next = state.get_untracked();
    let result = change(&mut next)
        .and_then(|_| next.config.validate())
        .and_then(|_| next.page.validate());
    match result {
        Ok(()) => {
            error.set(None);
            let current = state.get_untracked();
            if next != current {
                // The learning rate alone goes on with the run (e.g. lowered after a NaN stop).
                if !current.same_run(&next) {
                    trainer.reset();
                }
                state.set(next);
            }
        }
        Err(message) => error.set(Some(message)),
    }
}

fn parse<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{what}: “{text}” is not a number."))
}

/// A labelled number input. `read` shows the value; `write` parses the text into the state.
#[component]
fn NumberField(
    id: &'static str,
    label: &'static str,
    #[prop(optional)] hint: &'static str,
    #[prop(default = "any")] step: &'static str,
    state: RwSignal<PageState>,
    error: RwSignal<Option<String>>,
    trainer: Trainer,
    read: fn(&PageState) -> String,
    write: fn(&mut PageState, &str) -> Result<(), String>,
) -> impl IntoView {
    view! {
        <div class="field">
            <label for=id>{label}</label>
            <input
                id=id
                type="number"
                step=step
                prop:value=move || state.with(read)
                title=hint
                on:change=move |event| {
                    let text = event_target_value(&event);
                    apply(state, error, trainer, |s| write(s, &text));
                }
            />
        </div>
    }
}

/// A labelled select over `options` (value, text).
#[component]
fn SelectField(
    id: &'static str,
    label: &'static str,
    options: Vec<(&'static str, &'static str)>,
    state: RwSignal<PageState>,
    error: RwSignal<Option<String>>,
    trainer: Trainer,
    read: fn(&PageState) -> &'static str,
    write: fn(&mut PageState, &str) -> Result<(), String>,
) -> impl IntoView {
    let options = options
        .into_iter()
        .map(|(value, text)| {
            view! {
                <option value=value selected=move || state.with(read) == value>{text}</option>
            }
        })
        .collect_view();
    view! {
        <div class="field">
            <label for=id>{label}</label>
            <select
                id=id
                prop:value=move || state.with(read)
                on:change=move |event| {
                    let text = event_target_value(&event);
                    apply(state, error, trainer, |s| write(s, &text));
                }
            >
                {options}
            </select>
        </div>
    }
}

#[component]
fn CheckField(
    id: &'static str,
    label: &'static str,
    state: RwSignal<PageState>,
    error: RwSignal<Option<String>>,
    trainer: Trainer,
    read: fn(&PageState) -> bool,
    write: fn(&mut PageState, bool),
) -> impl IntoView {
    view! {
        <div class="field check">
            <input
                id=id
                type="checkbox"
                prop:checked=move || state.with(read)
                on:change=move |event| {
                    let on = event_target_checked(&event);
                    apply(state, error, trainer, |s| {
                        write(s, on);
                        Ok(())
                    });
                }
            />
            <label for=id>{label}</label>
        </div>
    }
}

/// Written as a function: a `>` inside `view!` would close the tag.
fn clipping_on(s: &PageState) -> bool {
    s.config.clip > 0.0
}

fn model_key(s: &PageState) -> &'static str {
    s.config.model.name()
}

fn one_of<T: Copy>(all: &[T], key: &str, name: impl Fn(T) -> &'static str) -> Result<T, String> {
    all.iter()
        .copied()
        .find(|item| name(*item) == key)
        .ok_or_else(|| format!("Unknown choice “{key}”."))
}

fn schedule_name(schedule: Schedule) -> &'static str {
    match schedule {
        Schedule::Switch => "switch",
        Schedule::Linear => "linear",
        Schedule::Cosine => "cosine",
        Schedule::Sigmoid => "sigmoid",
        Schedule::Constant => "constant",
    }
}

fn weight_name(weight: WeightType) -> &'static str {
    match weight {
        WeightType::Square => "square",
        WeightType::Simple => "simple",
        WeightType::Uniform => "uniform",
    }
}

fn warmup_name(warmup: WarmupLoss) -> &'static str {
    match warmup {
        WarmupLoss::Bce => "bce",
        WarmupLoss::Ce => "ce",
    }
}

#[component]
pub fn Controls(state: RwSignal<PageState>, trainer: Trainer) -> impl IntoView {
    let error = RwSignal::new(None::<String>);
    let (s, e, t) = (state, error, trainer);
    view! {
        <section class="panel controls" aria-labelledby="controls-title">
            <h2 id="controls-title">"2 · Settings"</h2>
            <fieldset>
                <legend>"Net"</legend>
                <SelectField id="model" label="Model" state=s error=e trainer=t
                    options=vec![("simple", "Simple (seed, 1→8→16→C)"), ("target", "Target (seed, 1→16→32→64→C)"), ("unet", "3D U-Net")]
                    read=model_key
                    write=|s, v| { s.config.model = one_of(&ModelKind::ALL, v, ModelKind::name)?; Ok(()) } />
                <SelectField id="targets" label="Outputs" state=s error=e trainer=t
                    options=vec![("classes", "one per class, softmax"), ("regions", "BraTS regions WT, TC, ET, a sigmoid each")]
                    read=|s| s.config.targets.name()
                    write=|s, v| {
                        s.config.targets = one_of(&Targets::ALL, v, Targets::name)?;
                        // Overlapping regions train with BCE (a sigmoid per region), never CE.
                        if s.config.targets == Targets::Regions {
                            s.config.warmup = WarmupLoss::Bce;
                        }
                        Ok(())
                    } />
                <NumberField id="pretrain_epochs" label="Init: pretrain Simple for K epochs, then widen (Target only; 0 = random init)" step="1" state=s error=e trainer=t
                    read=|s| s.config.pretrain_epochs.to_string()
                    write=|s, v| { s.config.pretrain_epochs = parse(v, "pretrain epochs")?; Ok(()) } />
                <NumberField id="seed" label="Seed" step="1" state=s error=e trainer=t
                    read=|s| s.config.seed.to_string()
                    write=|s, v| { s.config.seed = parse(v, "seed")?; Ok(()) } />
            </fieldset>
            <fieldset>
                <legend>"Mixed loss"</legend>
                <SelectField id="warmup" label="Warm-up term" state=s error=e trainer=t
                    options=vec![("ce", "cross-entropy (CE)"), ("bce", "binary cross-entropy (BCE)")]
                    read=|s| warmup_name(s.config.warmup)
                    write=|s, v| { s.config.warmup = one_of(&[WarmupLoss::Bce, WarmupLoss::Ce], v, warmup_name)?; Ok(()) } />
                <SelectField id="schedule" label="Hand-over to the GDL" state=s error=e trainer=t
                    options=vec![("switch", "switch"), ("linear", "linear ramp"), ("cosine", "cosine ramp"), ("sigmoid", "sigmoid ramp"), ("constant", "both at λ = ½ (no hand-over)")]
                    read=|s| schedule_name(s.config.schedule)
                    write=|s, v| { s.config.schedule = one_of(&Schedule::ALL, v, schedule_name)?; Ok(()) } />
                <NumberField id="warmup_epochs" label="Warm-up epochs" state=s error=e trainer=t
                    read=|s| s.config.warmup_epochs.to_string()
                    write=|s, v| { s.config.warmup_epochs = parse(v, "warm-up epochs")?; Ok(()) } />
                <NumberField id="ramp_epochs" label="Ramp epochs" state=s error=e trainer=t
                    read=|s| s.config.ramp_epochs.to_string()
                    write=|s, v| { s.config.ramp_epochs = parse(v, "ramp epochs")?; Ok(()) } />
                <NumberField id="bce_weight" label="Warm-up weight" state=s error=e trainer=t
                    read=|s| s.config.bce_weight.to_string()
                    write=|s, v| { s.config.bce_weight = parse(v, "warm-up weight")?; Ok(()) } />
                <NumberField id="gdl_weight" label="GDL weight" state=s error=e trainer=t
                    read=|s| s.config.gdl_weight.to_string()
                    write=|s, v| { s.config.gdl_weight = parse(v, "GDL weight")?; Ok(()) } />
            </fieldset>
            <fieldset>
                <legend>"GDL"</legend>
                <SelectField id="w_type" label="Class weights w_c" state=s error=e trainer=t
                    options=vec![("simple", "1/G (simple)"), ("square", "1/G² (square, MONAI default)"), ("uniform", "1 (uniform)")]
                    read=|s| weight_name(s.config.w_type)
                    write=|s, v| { s.config.w_type = one_of(&[WeightType::Square, WeightType::Simple, WeightType::Uniform], v, weight_name)?; Ok(()) } />
                <CheckField id="include_background" label="Include background" state=s error=e trainer=t
                    read=|s| s.config.include_background
                    write=|s, on| s.config.include_background = on />
                <CheckField id="batch_dice" label="Sum over the batch" state=s error=e trainer=t
                    read=|s| s.config.batch_dice
                    write=|s, on| s.config.batch_dice = on />
                <NumberField id="smooth_nr" label="smooth_nr" state=s error=e trainer=t
                    read=|s| s.config.smooth_nr.to_string()
                    write=|s, v| { s.config.smooth_nr = parse(v, "smooth_nr")?; Ok(()) } />
                <NumberField id="smooth_dr" label="smooth_dr" state=s error=e trainer=t
                    read=|s| s.config.smooth_dr.to_string()
                    write=|s, v| { s.config.smooth_dr = parse(v, "smooth_dr")?; Ok(()) } />
            </fieldset>
            <fieldset>
                <legend>"Optimiser and data"</legend>
                <NumberField id="lr" label="Learning rate (Adam)" state=s error=e trainer=t
                    read=|s| s.config.lr.to_string()
                    write=|s, v| { s.config.lr = parse(v, "learning rate")?; Ok(()) } />
                <CheckField id="clip_on" label="Clip the global gradient norm" state=s error=e trainer=t
                    read=clipping_on
                    write=|s, on| s.config.clip = if on { 1.0 } else { 0.0 } />
                <NumberField id="clip" label="Max norm (0 = off)" state=s error=e trainer=t
                    read=|s| s.config.clip.to_string()
                    write=|s, v| { s.config.clip = parse(v, "max norm")?; Ok(()) } />
                <NumberField id="patch" label="Patch edge (voxels)" step="4" state=s error=e trainer=t
                    read=|s| s.config.patch.to_string()
                    write=|s, v| { s.config.patch = parse(v, "patch edge")?; Ok(()) } />
                <NumberField id="batch" label="Patches per step" step="1" state=s error=e trainer=t
                    read=|s| s.config.batch.to_string()
                    write=|s, v| { s.config.batch = parse(v, "patches per step")?; Ok(()) } />
                <NumberField id="steps_per_epoch" label="Steps per epoch" step="1" state=s error=e trainer=t
                    read=|s| s.config.steps_per_epoch.to_string()
                    write=|s, v| { s.config.steps_per_epoch = parse(v, "steps per epoch")?; Ok(()) } />
                <NumberField id="epochs" label="Epochs" step="1" state=s error=e trainer=t
                    read=|s| s.config.epochs.to_string()
                    write=|s, v| { s.config.epochs = parse(v, "epochs")?; Ok(()) } />
            </fieldset>
            <fieldset>
                <legend>"Scan"</legend>
                <CheckField id="crop" label="Crop to the head" state=s error=e trainer=t
                    read=|s| s.config.crop
                    write=|s, on| s.config.crop = on />
                <CheckField id="resample" label="Resample to fit the device" state=s error=e trainer=t
                    read=|s| s.config.resample
                    write=|s, on| s.config.resample = on />
                <SelectField id="overlap" label="Prediction windows overlap" state=s error=e trainer=t
                    options=vec![("0", "0 % (fastest)"), ("25", "25 %"), ("50", "50 % (smoothest)")]
                    read=|s| match s.config.overlap { 0 => "0", 50 => "50", _ => "25" }
                    write=|s, v| { s.config.overlap = parse(v, "overlap")?; Ok(()) } />
            </fieldset>
            <fieldset>
                <legend>"Page"</legend>
                <SelectField id="backend" label="Train on" state=s error=e trainer=t
                    options=vec![("auto", "Auto (the faster, measured)"), ("gpu", "GPU (WebGPU)"), ("cpu", "CPU (flex, in wasm)")]
                    read=|s| match s.page.backend { BackendChoice::Auto => "auto", BackendChoice::Gpu => "gpu", BackendChoice::Cpu => "cpu" }
                    write=|s, v| { s.page.backend = match v { "cpu" => BackendChoice::Cpu, "gpu" => BackendChoice::Gpu, _ => BackendChoice::Auto }; Ok(()) } />
                <NumberField id="eval_every" label="Predict the volume every N steps (0 = on demand)" step="1" state=s error=e trainer=t
                    read=|s| s.page.eval_every.to_string()
                    write=|s, v| { s.page.eval_every = parse(v, "prediction interval")?; Ok(()) } />
                <NumberField id="val_every" label="Score held-out cases every N steps (0 = once per epoch)" step="1" state=s error=e trainer=t
                    read=|s| s.page.val_every.to_string()
                    write=|s, v| { s.page.val_every = parse(v, "validation interval")?; Ok(()) } />
                <SelectField id="weights" label="Exported weights" state=s error=e trainer=t
                    options=vec![("last", "The last step's"), ("best", "The best held-out step's")]
                    read=|s| match s.page.weights { ExportedWeights::Last => "last", ExportedWeights::Best => "best" }
                    write=|s, v| { s.page.weights = if v == "best" { ExportedWeights::Best } else { ExportedWeights::Last }; Ok(()) } />
                <NumberField id="cpu_workers" label="CPU workers splitting each batch (0 = one per core)" step="1" state=s error=e trainer=t
                    read=|s| s.page.cpu_workers.to_string()
                    write=|s, v| { s.page.cpu_workers = parse(v, "CPU workers")?; Ok(()) } />
                <NumberField id="demo_size" label="Demo scan edge (32–128)" step="16" state=s error=e trainer=t
                    read=|s| s.page.demo_size.to_string()
                    write=|s, v| { s.page.demo_size = parse(v, "demo edge")?; Ok(()) } />
            </fieldset>
            {move || error.get().map(|message| view! {
                <p class="banner error" role="alert" data-test="settings-error">{message}</p>
            })}
        </section>
    }
}
