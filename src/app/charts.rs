//! Live line charts as small SVGs: thinned to a few hundred points so a long run stays smooth,
//! the zero line drawn heavy so a negative loss cannot be missed, values on hover.

use leptos::prelude::*;

use super::browser;
use super::explain::Explain;

use super::trainer::Trainer;
use crate::report::StepReport;
use crate::view::chart::{
    BOTTOM, HEIGHT, LEFT, RIGHT, Scale, Series, TOP, WIDTH, charts, format_tick, path, thin,
    values_at,
};
use crate::view::figure::{Axis, figure_size, figure_svg};
use crate::view::runs::{label, overlay, runs_csv, tag};

/// Most points drawn per series; 1000-step histories are thinned to this (spikes kept).
const MAX_POINTS: usize = 600;

#[component]
pub fn LineChart(
    title: &'static str,
    test_id: &'static str,
    /// The "what is this?" note.
    explain: &'static str,
    series: Signal<Vec<Series>>,
    #[prop(optional)] log_y: bool,
    /// Linear charts always show y = 0.
    #[prop(default = true)]
    include_zero: bool,
    /// A labelled horizontal line (e.g. the clipping threshold).
    #[prop(optional, into)]
    threshold: Signal<Option<(f64, String)>>,
    /// What a downloaded figure says under its title (the scan and the step).
    #[prop(optional, into)]
    caption: Signal<String>,
    /// Where a failed figure download is told.
    #[prop(optional)]
    error: Option<RwSignal<Option<String>>>,
) -> impl IntoView {
    let hover = RwSignal::new(None::<f64>);
    // The chart as it is drawn, as a figure that reads on its own (kept runs included).
    let figure = move || {
        let axis = Axis {
            log_y,
            include_zero,
            threshold: threshold.get_untracked(),
        };
        let series = series.get_untracked();
        let svg = figure_svg(title, &caption.get_untracked(), &series, &axis);
        let step = series
            .first()
            .and_then(|s| s.points.last())
            .map_or(0, |p| p.0 as usize);
        (
            svg,
            figure_size(&series),
            format!("gdl-lab-{test_id}-step{step}"),
        )
    };
    let tell = move |result: Result<(), String>| {
        if let (Err(message), Some(error)) = (result, error) {
            error.set(Some(message));
        }
    };
    let download_svg = move |_| {
        let (svg, _, name) = figure();
        tell(browser::download(
            &format!("{name}.svg"),
            "image/svg+xml",
            svg.as_bytes(),
        ));
    };
    let download_png =
        move |_| {
            let (svg, (width, height), name) = figure();
            leptos::task::spawn_local(async move {
                let png = browser::svg_to_png(&svg, width, height, 2.0).await;
                tell(png.and_then(|bytes| {
                    browser::download(&format!("{name}.png"), "image/png", &bytes)
                }));
            });
        };
    let geometry = Memo::new(move |_| {
        let series = series.get();
        let mut include: Vec<f64> = threshold.get().map(|(y, _)| vec![y]).unwrap_or_default();
        if include_zero && !log_y {
            include.push(0.0);
        }
        let scale = Scale::fit(&series, log_y, &include);
        let lines: Vec<(String, String, bool)> = series
            .iter()
            .map(|s| {
                (
                    path(&thin(&s.points, MAX_POINTS), &scale),
                    s.colour.clone(),
                    s.dashed,
                )
            })
            .collect();
        let points = series.iter().map(|s| s.points.len()).max().unwrap_or(0);
        (scale, lines, points)
    });
    let plot_bottom = HEIGHT - BOTTOM;
    let plot_right = WIDTH - RIGHT;

    let y_axis = move || {
        let (scale, _, _) = geometry.get();
        scale
            .y_ticks()
            .into_iter()
            .filter_map(|tick| {
                let y = scale.y(tick)?;
                let zero = !log_y && tick == 0.0;
                Some(view! {
                    <line x1=LEFT x2=plot_right y1=y y2=y class=if zero { "zero" } else { "grid" } />
                    <text x=LEFT - 4.0 y=y + 3.0 class="tick" text-anchor="end">{format_tick(tick)}</text>
                })
            })
            .collect_view()
    };
    let x_axis = move || {
        let (scale, _, _) = geometry.get();
        scale
            .x_ticks()
            .into_iter()
            .map(|tick| {
                let x = scale.x(tick);
                view! {
                    <text x=x y=HEIGHT - 6.0 class="tick" text-anchor="middle">{format_tick(tick)}</text>
                }
            })
            .collect_view()
    };
    let threshold_line = move || {
        let (scale, _, _) = geometry.get();
        let (value, label) = threshold.get()?;
        let y = scale.y(value)?;
        Some(view! {
            <line x1=LEFT x2=plot_right y1=y y2=y class="threshold" />
            <text x=plot_right - 2.0 y=y - 3.0 class="tick" text-anchor="end">{label}</text>
        })
    };
    let lines = move || {
        geometry
            .get()
            .1
            .into_iter()
            .map(|(d, colour, dashed)| {
                view! {
                    <path d=d stroke=colour fill="none" stroke-width="1.6"
                        stroke-dasharray=if dashed { "4 3" } else { "" } />
                }
            })
            .collect_view()
    };
    let readout = move || {
        let step = hover.get()?;
        let (scale, _, _) = geometry.get();
        let values = values_at(&series.get(), step);
        let nearest = values.first()?.2;
        let x = scale.x(nearest);
        let text = values
            .iter()
            .map(|(name, _, _, value)| format!("{name} {value:.4}"))
            .collect::<Vec<_>>()
            .join(" · ");
        Some(view! {
            <line x1=x x2=x y1=TOP y2=plot_bottom class="cursor" />
            <text x=LEFT + 4.0 y=TOP + 10.0 class="hover" data-test=format!("{test_id}-hover")>
                {format!("step {nearest}: {text}")}
            </text>
        })
    };
    let legend = move || {
        series
            .get()
            .into_iter()
            .map(|s| {
                let last = s
                    .points
                    .last()
                    .map(|p| format!(" {:.4}", p.1))
                    .unwrap_or_default();
                view! {
                    <li>
                        <span class="swatch" class:dashed=s.dashed style=format!("background: {}", s.colour)></span>
                        {format!("{}{last}", s.name)}
                    </li>
                }
            })
            .collect_view()
    };
    let on_move = move |event: web_sys::MouseEvent| {
        let Some(target) = event.current_target() else {
            return;
        };
        use wasm_bindgen::JsCast;
        let element: web_sys::Element = target.unchecked_into();
        let width = element.client_width().max(1) as f64;
        let px = event.offset_x() as f64 / width * WIDTH;
        let (scale, _, points) = geometry.get_untracked();
        if points > 0 {
            hover.set(Some(scale.step_at(px)));
        }
    };
    view! {
        <figure class="chart" data-test=test_id data-points=move || geometry.get().2>
            <figcaption>{title}</figcaption>
            <svg
                viewBox=format!("0 0 {WIDTH} {HEIGHT}")
                role="img"
                aria-label=title
                on:mousemove=on_move
                on:mouseleave=move |_| hover.set(None)
            >
                <rect x=LEFT y=TOP width=WIDTH - LEFT - RIGHT height=HEIGHT - TOP - BOTTOM class="plot" />
                {y_axis}
                {x_axis}
                {threshold_line}
                {lines}
                {readout}
            </svg>
            <ul class="legend">{legend}</ul>
            <div class="figure-buttons">
                <button data-test=format!("{test_id}-svg") title="This chart as a figure: title, scan, step and a legend naming each line" on:click=download_svg>"SVG"</button>
                <button data-test=format!("{test_id}-png") title="This chart as a figure, drawn at twice its size" on:click=download_png>"PNG"</button>
            </div>
            <Explain text=explain />
        </figure>
    }
}

/// The five live charts over the step history.
#[component]
pub fn Charts(trainer: Trainer, clip: Signal<f64>) -> impl IntoView {
    let history = trainer.history;
    let kept = trainer.kept;
    let state = trainer.state();
    // A chart's lines for the current run, then the same lines of each visible kept run. The
    // kept runs' lines are made when the kept runs or the settings change, not at every step.
    let with_kept = move |lines: fn(&[StepReport]) -> Vec<Series>| {
        let kept_lines = Memo::new(move |_| {
            let current = state.get();
            kept.with(|runs| {
                runs.iter()
                    .enumerate()
                    .filter(|(_, run)| run.visible)
                    .flat_map(|(index, run)| {
                        overlay(lines(&run.history), &tag(index, &label(run, &current)))
                    })
                    .collect::<Vec<_>>()
            })
        });
        Signal::derive(move || {
            let mut all = history.with(|h| lines(h));
            all.extend(kept_lines.get());
            all
        })
    };
    let total = with_kept(charts::total);
    let components = with_kept(charts::components);
    // Per-class lines are named by the scan's classes ("Dice necrotic core", not "Dice 1").
    let class_names = move || {
        trainer.scan.with(|s| {
            s.as_ref()
                .map(|s| s.class_names.clone())
                .unwrap_or_default()
        })
    };
    let dice_lines = with_kept(|h| charts::per_channel(h, "Dice", |r| &r.anatomy.dice));
    let dice =
        Signal::derive(move || charts::with_class_names(dice_lines.get(), "Dice", &class_names()));
    let weight_lines = with_kept(|h| charts::per_channel(h, "w", |r| &r.anatomy.weight));
    let weights =
        Signal::derive(move || charts::with_class_names(weight_lines.get(), "w", &class_names()));
    // A figure's caption: the scan and the step.
    let caption = Signal::derive(move || {
        let scan = trainer
            .scan
            .with(|s| s.as_ref().map(|s| s.image_name.clone()).unwrap_or_default());
        let step = history.with(|h| h.last().map_or(0, |r| r.step));
        format!("{scan} · step {step} · gdl-lab")
    });
    let error = trainer.export_error;
    let norms = with_kept(charts::gradient_norms);
    let validation = trainer.validation;
    let scan = trainer.scan;
    let held_out = Signal::derive(move || {
        let names = scan.with(|s| {
            s.as_ref()
                .map(|s| s.class_names.clone())
                .unwrap_or_default()
        });
        validation.with(|reports| charts::validation(reports, &names))
    });
    let held_out_names = move || {
        trainer.cases.with(|cases| {
            cases
                .iter()
                .filter(|(_, out)| *out)
                .map(|(name, _)| name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        })
    };
    let threshold = Signal::derive(move || {
        let max = clip.get();
        (max > 0.0).then(|| (max, format!("max norm {max}")))
    });
    view! {
        <section class="panel charts" aria-labelledby="charts-title">
            <h2 id="charts-title">"4 · Losses"</h2>
            <div class="chart-grid">
                <LineChart title="Total loss" test_id="chart-total" caption error series=total
                    explain="The loss the optimiser minimised at each step: (1 − λ)·warm-up weight·warm-up + λ·GDL weight·GDL, on that step's random patches (hence the noise)." />
                <LineChart title="Components and λ(t)" test_id="chart-components" caption error series=components
                    explain="The warm-up term (BCE or CE) and the GDL, each before weighting, and λ(t), the GDL's share of the total. While λ = 0 the GDL is only watched; the schedule then hands the loss over to it." />
                <LineChart title="Soft Dice per class or region (this batch)" test_id="chart-dice" caption error series=dice
                    explain="Each class's (or region's) Dice on this step's batch, from the probabilities without thresholding, (2I + smooth_nr)/(P + G + smooth_dr): a class absent from the batch reads near 0 once anything is predicted for it and 1 only when nothing is (the lab shows the other conventions). A rare class that stays near 0 is not being learned; the hard Dice of the whole volume is under the slices." />
                <LineChart title="GDL class weights w_c (log scale)" test_id="chart-weights" caption error series=weights log_y=true include_zero=false
                    explain="w_c = 1/G_c (simple) or 1/G_c² (square), G_c being the class's voxels in the batch: rare classes weigh more. With 1/G² a class 100 times rarer weighs 10,000 times more." />
                <LineChart title="Gradient norm" test_id="chart-norms" caption error series=norms threshold=threshold
                    explain="The global L2 norm of all gradients before and after clipping. Above max norm (the dashed line) clipping scales the whole gradient down to it, keeping its direction." />
            </div>
            {move || (!held_out_names().is_empty()).then(|| view! {
                <div class="chart-grid" data-test="validation">
                    <LineChart title="Held-out Dice per class (per region for region outputs)" test_id="chart-validation" caption error series=held_out
                        explain="The hard Dice of each class on the held-out cases, which never feed a training patch: each is predicted whole (sliding windows, as the training scan) every val_every steps (default: once per epoch). Training Dice can climb while this stays flat: that is overfitting." />
                    <p class="held-out">"Held out: " {held_out_names()}</p>
                </div>
            })}
            <KeptRuns trainer />
        </section>
    }
}

/// The ended runs the charts can overlay: a checkbox each, labelled by what it set differently.
#[component]
fn KeptRuns(trainer: Trainer) -> impl IntoView {
    let kept = trainer.kept;
    let state = trainer.state();
    let export_all = move |_| {
        let csv = trainer
            .history
            .with_untracked(|current| kept.with_untracked(|runs| runs_csv(current, runs)));
        if let Err(message) = browser::download("gdl-lab-runs.csv", "text/csv", csv.as_bytes()) {
            trainer.export_error.set(Some(message));
        }
    };
    let rows = move || {
        let current = state.get();
        kept.get()
            .into_iter()
            .enumerate()
            .map(|(index, run)| {
                let text = format!(
                    "{}: {} · {} steps · {}",
                    index + 1,
                    label(&run, &current),
                    run.history.len(),
                    run.scan
                );
                view! {
                    <li>
                        <label>
                            <input
                                type="checkbox"
                                data-test=format!("kept-run-{index}")
                                prop:checked=run.visible
                                on:change=move |_| trainer.toggle_kept(index)
                            />
                            {text}
                        </label>
                    </li>
                }
            })
            .collect_view()
    };
    view! {
        <Show when=move || kept.with(|runs| !runs.is_empty())>
            <div class="kept-runs" data-test="kept-runs">
                <h3>"Kept runs (dashed on the charts)"</h3>
                <Explain text="A reset, a changed setting or a new scan keeps the run it ends (up to 8, newest first; stored in this browser, the scan itself is not). Each is named by the settings it had that differ from the current ones; uncheck one to hide it." />
                <ul>{rows}</ul>
                <div class="buttons">
                    <button data-test="export-runs" on:click=export_all>"All runs (.csv)"</button>
                    <button data-test="forget-runs" on:click=move |_| trainer.forget_kept()>"Forget kept runs"</button>
                </div>
            </div>
        </Show>
    }
}
