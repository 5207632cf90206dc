//! Axial, coronal and sagittal slices with window/level and overlays, redrawn whenever the
//! scan, the latest prediction or a control changes.

use std::sync::Arc;

use leptos::html::Canvas;
use leptos::prelude::*;
use wasm_bindgen::{Clamped, JsCast};

use super::browser;
use super::trainer::Trainer;
use crate::engine::protocol::ScanView;
use crate::report::Evaluation;
use crate::view::slice::{Overlay, Plane, SliceInput, Window, class_colour, render};
use crate::volume::REGION_SHORT;
use crate::volume::preprocess::Preparation;

/// One plane: a canvas and its slice slider.
#[component]
fn SliceView(
    plane: Plane,
    scan: Arc<ScanView>,
    evaluation: Signal<Option<Arc<Evaluation>>>,
    preparation: Signal<Option<Preparation>>,
    window: RwSignal<Window>,
    overlay: RwSignal<Overlay>,
    class: RwSignal<usize>,
    /// The input channel (modality) drawn under the overlays.
    channel: RwSignal<usize>,
    /// A channel other than the first, once the worker sent it.
    channel_plane: RwSignal<Option<(usize, Arc<Vec<f32>>)>>,
) -> impl IntoView {
    let dims = scan.dims;
    let depth = dims[plane.axis()];
    let slice = RwSignal::new(plane.foreground_centre(scan.dims, &scan.labels));
    let canvas = NodeRef::<Canvas>::new();
    let (width, height) = plane.size(dims);
    let spacing = scan.spacing;
    let (su, sv) = match plane {
        Plane::Axial => (spacing[0], spacing[1]),
        Plane::Coronal => (spacing[0], spacing[2]),
        Plane::Sagittal => (spacing[1], spacing[2]),
    };
    let aspect = (width as f64 * su.abs().max(1e-3)) / (height as f64 * sv.abs().max(1e-3));
    let drawn_scan = scan.clone();
    Effect::new(move |_| {
        let Some(canvas) = canvas.get() else {
            return;
        };
        let evaluation = evaluation.get();
        let preparation = preparation.get();
        let shown = channel_plane.get();
        let input = SliceInput {
            image: shown_intensities(&drawn_scan, channel.get(), shown.as_ref()),
            dims,
            plane,
            slice: slice.get(),
            window: window.get(),
            overlay: overlay.get(),
            truth: &drawn_scan.labels,
            prediction: evaluation.as_ref().map(|e| e.labels.as_slice()),
            probabilities: evaluation.as_ref().map(|e| e.probabilities.as_slice()),
            preparation: preparation.as_ref(),
            class: class.get(),
        };
        let (w, h, pixels) = render(&input);
        canvas.set_width(w as u32);
        canvas.set_height(h as u32);
        let Ok(Some(context)) = canvas.get_context("2d") else {
            return;
        };
        let context: web_sys::CanvasRenderingContext2d = context.unchecked_into();
        if let Ok(image) = web_sys::ImageData::new_with_u8_clamped_array_and_sh(
            Clamped(&pixels),
            w as u32,
            h as u32,
        ) {
            let _ = context.put_image_data(&image, 0.0, 0.0);
        }
    });
    let id = format!("slice-{}", plane.name());
    view! {
        <figure class="slice">
            <canvas
                node_ref=canvas
                data-test=format!("canvas-{}", plane.name())
                style=format!("aspect-ratio: {aspect:.4}")
                role="img"
                aria-label=format!("{} slice", plane.name())
            ></canvas>
            <label for=id.clone()>
                {format!("{} ", plane.name())}
                <span>{move || format!("{} / {}", slice.get() + 1, depth)}</span>
            </label>
            <input
                id=id
                type="range"
                min="0"
                max=depth.saturating_sub(1)
                prop:value=move || slice.get()
                on:input=move |event| {
                    if let Ok(value) = event_target_value(&event).parse() {
                        slice.set(value);
                    }
                }
            />
        </figure>
    }
}

/// The intensities of channel `index`: the first channel's come with the scan, another's once
/// the worker sent it (until then the first is drawn).
fn shown_intensities<'a>(
    scan: &'a ScanView,
    index: usize,
    plane: Option<&'a (usize, Arc<Vec<f32>>)>,
) -> &'a [f32] {
    match plane {
        Some((shown, plane)) if *shown == index => plane,
        _ => &scan.image,
    }
}

#[component]
pub fn Slices(trainer: Trainer) -> impl IntoView {
    // The applied scan ("Apply to a scan") while it is shown, else the training scan.
    let scan = Signal::derive(move || trainer.shown_scan());
    let evaluation = Signal::derive(move || trainer.shown_evaluation());
    let preparation = Signal::derive(move || {
        // The applied scan's prediction is in its own grid already.
        if trainer.showing_applied.get() && trainer.applied.with(Option::is_some) {
            None
        } else {
            trainer.preparation.get()
        }
    });
    let window = RwSignal::new(Window {
        level: 0.5,
        width: 1.0,
    });
    let range = RwSignal::new((0.0f32, 1.0f32));
    let overlay = RwSignal::new(Overlay::Both);
    let class = RwSignal::new(1usize);
    let channel = RwSignal::new(0usize);
    // A new scan starts on its first channel.
    Effect::new(move |_| {
        if scan.with(Option::is_some) {
            channel.set(0);
            class.set(1);
        }
    });
    // Each channel (and each new scan) gets its own automatic window.
    Effect::new(move |_| {
        if let Some(scan) = scan.get() {
            let shown = trainer.channel_plane.get();
            let image = shown_intensities(&scan, channel.get(), shown.as_ref());
            window.set(Window::auto(image));
            let (low, high) = image
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
                    (l.min(v), h.max(v))
                });
            range.set((low, high.max(low + f32::EPSILON)));
        }
    });
    let views = move || {
        scan.get().map(|scan| {
            Plane::ALL
                .into_iter()
                .map(|plane| {
                    view! { <SliceView plane scan=scan.clone() evaluation preparation window overlay class channel channel_plane=trainer.channel_plane /> }
                })
                .collect_view()
        })
    };
    let legend = move || {
        scan.get().map(|scan| {
            scan.class_names
                .iter()
                .enumerate()
                .skip(1)
                .map(|(index, name)| {
                    view! {
                        <li><span class="swatch" style=format!("background: {}", class_colour(index))></span>{name.clone()}</li>
                    }
                })
                .collect_view()
        })
    };
    let channel_options = move || {
        scan.get().map(|scan| {
            let names = if scan.modalities.len() == scan.channels {
                scan.modalities.clone()
            } else {
                vec![scan.image_name.clone()]
            };
            names
                .into_iter()
                .enumerate()
                .map(|(index, name)| {
                    view! { <option value=index selected=move || channel.get() == index>{name}</option> }
                })
                .collect_view()
        })
    };
    let class_options = move || {
        scan.get()
            .map(|scan| {
                scan.class_names
                    .iter()
                    .enumerate()
                    .map(|(index, name)| {
                        view! { <option value=index selected=move || class.get() == index>{name.clone()}</option> }
                    })
                    .collect_view()
            })
    };
    let slider = move |level: bool| {
        move |event: leptos::ev::Event| {
            if let Ok(value) = event_target_value(&event).parse::<f32>() {
                window.update(|w| {
                    if level {
                        w.level = value
                    } else {
                        w.width = value.max(f32::EPSILON)
                    }
                });
            }
        }
    };
    let step = move || {
        let (low, high) = range.get();
        (high - low) / 200.0
    };
    let status = move || match evaluation.get() {
        // An applied scan without a label map has a prediction and no Dice.
        Some(evaluation) if evaluation.dice.is_empty() => format!(
            "prediction: no label map to score it against, {:.0} ms",
            evaluation.millis
        ),
        // A region net is scored as BraTS scores it: per region.
        Some(evaluation) if !evaluation.region_dice.is_empty() => format!(
            "prediction: hard Dice {} (mean {:.3}; 1 for a region absent from both), {:.0} ms",
            REGION_SHORT
                .iter()
                .zip(&evaluation.region_dice)
                .map(|(region, d)| format!("{region} {d:.3}"))
                .collect::<Vec<_>>()
                .join(" / "),
            evaluation.mean_foreground_dice,
            evaluation.millis
        ),
        Some(evaluation) => format!(
            "prediction: hard Dice {} (mean foreground {:.3}; 1 for a class absent from both), \
             {:.0} ms",
            evaluation
                .dice
                .iter()
                .skip(1)
                .map(|d| format!("{d:.3}"))
                .collect::<Vec<_>>()
                .join(" / "),
            evaluation.mean_foreground_dice,
            evaluation.millis
        ),
        None => "no prediction yet: train, or press “Predict now”".into(),
    };
    // The three views as one figure: the scan and the step above, the classes below, the
    // run's link inside the PNG.
    let export_slices = move |_| {
        let Some(scan) = scan.get_untracked() else {
            return;
        };
        let step = trainer
            .history
            .with_untracked(|h| h.last().map_or(0, |r| r.step));
        let window = window.get_untracked();
        let channel_name = scan
            .modalities
            .get(channel.get_untracked())
            .cloned()
            .unwrap_or_else(|| scan.image_name.clone());
        let caption = format!(
            "{} · {channel_name} · step {step} · {} · level {:.3}, width {:.3} · gdl-lab",
            scan.image_name,
            overlay.get_untracked().label(),
            window.level,
            window.width
        );
        let legend: Vec<(String, String)> = scan
            .class_names
            .iter()
            .enumerate()
            .skip(1)
            .map(|(class, name)| (class_colour(class), name.clone()))
            .collect();
        let planes: Vec<&str> = Plane::ALL.iter().map(|p| p.name()).collect();
        let saved =
            browser::slices_png(&planes, &caption, &legend, &browser::href()).and_then(|png| {
                let name = format!("gdl-lab-slices-step{step}.png");
                browser::download(&name, "image/png", &png)
            });
        if let Err(message) = saved {
            trainer.export_error.set(Some(message));
        }
    };
    view! {
        <section class="panel slices" aria-labelledby="slices-title">
            <h2 id="slices-title">"5 · Slices"</h2>
            <div class="slice-controls">
                <div class="field">
                    <label for="overlay">"Overlay"</label>
                    <select id="overlay" on:change=move |event| {
                        if let Some(o) = Overlay::from_key(&event_target_value(&event)) { overlay.set(o) }
                    }>
                        {Overlay::ALL.into_iter().map(|o| view! {
                            <option value=o.key() selected=move || overlay.get() == o>{o.label()}</option>
                        }).collect_view()}
                    </select>
                </div>
                <div class="field">
                    <label for="channel">"Image"</label>
                    <select id="channel" data-test="channel" on:change=move |event| {
                        if let Ok(c) = event_target_value(&event).parse() {
                            channel.set(c);
                            trainer.show_channel(c);
                        }
                    }>{channel_options}</select>
                </div>
                <div class="field">
                    <label for="prob-class">"Probability of"</label>
                    <select id="prob-class" on:change=move |event| {
                        if let Ok(c) = event_target_value(&event).parse() { class.set(c) }
                    }>{class_options}</select>
                </div>
                <div class="field">
                    <label for="level">"Level"</label>
                    <input id="level" type="range" min=move || range.get().0 max=move || range.get().1 step=step
                        prop:value=move || window.get().level on:input=slider(true) />
                </div>
                <div class="field">
                    <label for="width">"Width"</label>
                    <input id="width" type="range" min=step max=move || range.get().1 - range.get().0 step=step
                        prop:value=move || window.get().width on:input=slider(false) />
                </div>
            </div>
            <div class="slice-grid">{views}</div>
            <ul class="legend">{legend}</ul>
            <div class="buttons">
                <button data-test="export-slices" title="The three views as one PNG at twice their size, with the legend, the scan, the step and the run's link inside" on:click=export_slices>"Slices (.png)"</button>
            </div>
            <p class="status" data-test="prediction-status" aria-live="polite"
                data-count=move || trainer.evaluations.get()>{status}</p>
        </section>
    }
}
