//! The negative-GDL lab: inject one real cause into the GDL of the current batch and see the
//! value beside the correct one, the monitor's sentence and what the GDL was made of.

use leptos::prelude::*;

use super::explain::Explain;

use super::trainer::Trainer;
use crate::loss::Misuse;
use crate::report::{GdlAnatomy, anatomy_csv};
use crate::view::PageState;
use crate::view::absent::absent_classes;

/// The misuse's name in the URL state (`misuse=label_map_as_target`).
pub fn misuse_key(misuse: Misuse) -> String {
    serde_json::to_value(misuse)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// Sums of thousands of voxels need no four decimals; ratios do.
fn compact(value: f32) -> String {
    if value.abs() >= 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.4}")
    }
}

#[component]
fn AnatomyTable(anatomy: GdlAnatomy, title: &'static str, test_id: &'static str) -> impl IntoView {
    let rows = anatomy
        .channels
        .iter()
        .enumerate()
        .map(|(i, channel)| {
            let cell = |values: &Vec<f32>| compact(values.get(i).copied().unwrap_or(f32::NAN));
            let weight = format!("{:.2e}", anatomy.weight.get(i).copied().unwrap_or(f32::NAN));
            view! {
                <tr>
                    <th scope="row">{channel.clone()}</th>
                    <td>{cell(&anatomy.intersection)}</td>
                    <td>{cell(&anatomy.prediction)}</td>
                    <td>{cell(&anatomy.target)}</td>
                    <td>{weight}</td>
                    <td>{cell(&anatomy.dice)}</td>
                    <td>{cell(&anatomy.contribution)}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="anatomy" data-test=test_id>
            <caption>{format!("{title}: GDL = {:.5}", anatomy.value)}</caption>
            <thead>
                <tr>
                    <th scope="col">"channel"</th>
                    <th scope="col">"I = Σp·g"</th>
                    <th scope="col">"P = Σp"</th>
                    <th scope="col">"G = Σg"</th>
                    <th scope="col">"w_c"</th>
                    <th scope="col">"Dice"</th>
                    <th scope="col">"contribution"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

/// A class absent from the batch, read rather than injected: MONAI's weight replacement and the
/// three conventions for its Dice 0/0, side by side.
#[component]
fn AbsentReading(anatomy: GdlAnatomy, class_names: Vec<String>) -> impl IntoView {
    let absent = absent_classes(&anatomy, &class_names);
    let Some(first) = absent.first().cloned() else {
        return view! {
            <p class="absent" data-test="lab-absent">
                "Every class is present in this batch. A batch without one (G = 0) shows here how its infinite weight is replaced and what its Dice 0/0 reads under each convention."
            </p>
        }
        .into_any();
    };
    let rows = first
        .conventions()
        .into_iter()
        .map(|(value, used)| view! { <tr><th scope="row">{value}</th><td>{used}</td></tr> })
        .collect_view();
    view! {
        <div class="absent" data-test="lab-absent">
            <p>{absent.iter().map(|class| class.sentence()).collect::<Vec<_>>().join(" ")}</p>
            <table class="anatomy">
                <caption>"Dice of an absent class, 0/0, by convention"</caption>
                <thead><tr><th scope="col">"reads"</th><th scope="col">"convention"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
            <p>"The soft Dice chart shows the smoothed value; the hard Dice under the slices counts a class absent from both the scan and the prediction as 1."</p>
        </div>
    }
    .into_any()
}

#[component]
pub fn Lab(state: RwSignal<PageState>, trainer: Trainer) -> impl IntoView {
    let selection = trainer.lab_selection;
    let reading = trainer.lab;
    let selected = move || selection.get().flatten();
    let toggles = Misuse::ALL
        .into_iter()
        .map(|misuse| {
            let key = misuse_key(misuse);
            let pressed = move || selected() == Some(misuse);
            view! {
                <button
                    class="toggle"
                    data-test=format!("lab-{key}")
                    aria-pressed=move || pressed().to_string()
                    on:click=move |_| {
                        trainer.select_lab(if pressed() { None } else { Some(misuse) })
                    }
                >
                    {misuse.label()}
                </button>
            }
        })
        .collect_view();
    let correct = move || reading.get().map(|r| format!("{:.5}", r.correct.value));
    // The readout and both tables as CSV, channels named by the scan's classes.
    let export_tables = move |_| {
        let Some(reading) = reading.get_untracked() else {
            return;
        };
        let names = trainer.scan.with_untracked(|s| {
            s.as_ref()
                .map(|s| s.class_names.clone())
                .unwrap_or_default()
        });
        let mut tables = vec![("correct".to_string(), reading.correct)];
        if let Some((misuse, anatomy)) = reading.misused {
            tables.push((misuse.label().to_string(), anatomy));
        }
        let rows: Vec<(&str, &GdlAnatomy)> = tables.iter().map(|(t, a)| (t.as_str(), a)).collect();
        let step = trainer
            .history
            .with_untracked(|h| h.last().map_or(0, |r| r.step));
        let csv = anatomy_csv(&rows, &names);
        let name = format!("gdl-lab-lab-tables-step{step}.csv");
        if let Err(message) = super::browser::download(&name, "text/csv", csv.as_bytes()) {
            trainer.export_error.set(Some(message));
        }
    };
    let misused = move || {
        reading
            .get()
            .and_then(|r| r.misused)
            .map(|(_, a)| format!("{:.5}", a.value))
    };
    let outside = move || {
        reading
            .get()
            .and_then(|r| r.misused)
            .is_some_and(|(_, a)| !a.monitor.in_range())
    };
    let explanation = move || {
        let reading = reading.get()?;
        let (misuse, anatomy) = reading.misused?;
        Some(match anatomy.explanation {
            Some(sentence) => sentence,
            None => match anatomy.violations.first() {
                Some(reason) => format!(
                    "On this batch the value stays in [0, 1], but an assumption is broken: \
                     {reason} It leaves [0, 1] {}.",
                    misuse.when_it_leaves()
                ),
                None => "No assumption is broken.".into(),
            },
        })
    };
    let train_with = move |event: leptos::ev::Event| {
        let on = event_target_checked(&event);
        let misuse = if on { selected() } else { None };
        trainer.reset();
        state.update(|s| s.config.misuse = misuse);
    };
    view! {
        <section class="panel lab" aria-labelledby="lab-title">
            <h2 id="lab-title">"6 · Why can the GDL go negative?"</h2>
            <div class="explainer">
                <p>
                    "GDL = 1 − 2·Σ" <sub>"c"</sub> "w" <sub>"c"</sub> "·I" <sub>"c"</sub>
                    " / Σ" <sub>"c"</sub> "w" <sub>"c"</sub> "·(P" <sub>"c"</sub> " + G" <sub>"c"</sub>
                    "), with I = Σp·g, P = Σp, G = Σg. "
                    "For every voxel, p + g − 2pg = p(1 − g) + g(1 − p) ≥ 0 whenever p and g lie in [0, 1], "
                    "so 2·I ≤ P + G for each class; with weights w ≥ 0 the fraction is at most 1 and "
                    "the GDL is at least 0 (smoothing keeps this when smooth_nr ≤ smooth_dr). It is at most 1 "
                    "because I, P, G and w are all non-negative. "
                    "So a valid GDL lies in [0, 1] however bad the prediction is: a negative value "
                    "always means an input broke one of these assumptions."
                </p>
                <p>
                    "The proof is per voxel and per channel: it never uses Σ"<sub>"c"</sub>" p = 1. "
                    "So it holds for a softmax over exclusive classes and equally for a sigmoid per "
                    "channel over BraTS's overlapping regions (WT ⊃ TC ⊃ ET, outputs=regions), where "
                    "a voxel's probabilities need not sum to 1 and an enhancing-tumour voxel is 1 in "
                    "all three targets. A value inside [0, 1] can still be wrong: the last three "
                    "causes below keep it there."
                </p>
                <p>"Inject one cause into the GDL of the current batch:"</p>
            </div>
            <div class="toggles" role="group" aria-label="causes">{toggles}</div>
            <dl class="readout lab-values">
                <dt>"correct GDL" <Explain text="The GDL of the current batch computed correctly: softmax probabilities against one-hot classes (or, with region outputs, a sigmoid per region against the region masks), non-negative weights, float32 sums. Whatever the net predicts, it lies in [0, 1]." /></dt>
                <dd data-test="lab-correct">{move || correct().unwrap_or("–".into())}</dd>
                <dt>"with the cause" <Explain text="The same batch with the selected cause injected. A value outside [0, 1] proves an input broke an assumption of the formula; a value inside can still be wrong, as the sentence below says." /></dt>
                <dd data-test="lab-misused" class:negative=outside
                    data-misuse=move || reading.get().and_then(|r| r.misused).map(|(m, _)| misuse_key(m)).unwrap_or_default()>{move || misused().unwrap_or("–".into())}</dd>
            </dl>
            {move || explanation().map(|sentence| view! {
                <p class="banner warning" data-test="lab-explanation" role="status">{sentence}</p>
            })}
            <Explain text="The tables, per class: I = Σp·g (overlap), P = Σp (predicted mass), G = Σg (true voxels), the weight w_c, the class's Dice 2I/(P+G) and its share of the weighted sums; GDL = 1 − 2·Σw·I / Σw·(P+G)." />
            <div class="buttons">
                <button data-test="export-lab" disabled=move || reading.with(Option::is_none)
                    on:click=export_tables>"Tables (.csv)"</button>
            </div>
            <div class="tables">
                {move || reading.get().map(|r| view! { <AnatomyTable anatomy=r.correct title="correct" test_id="lab-table-correct" /> })}
                {move || reading.get().and_then(|r| r.misused).map(|(_, a)| view! { <AnatomyTable anatomy=a title="with the cause" test_id="lab-table" /> })}
            </div>
            {move || reading.get().map(|r| {
                let class_names = trainer.scan.with(|s| s.as_ref().map(|s| s.class_names.clone()).unwrap_or_default());
                view! { <AbsentReading anatomy=r.correct class_names /> }
            })}
            <div class="field check">
                <input
                    id="train-with-misuse"
                    type="checkbox"
                    prop:checked=move || state.with(|s| s.config.misuse.is_some())
                    disabled=move || selected().is_none() && state.with(|s| s.config.misuse.is_none())
                    on:change=train_with
                />
                <label for="train-with-misuse">
                    {move || match state.with(|s| s.config.misuse) {
                        Some(m) => format!("Training with “{}” (uncheck to train correctly again)", m.label()),
                        None => "Train with the selected cause on, to watch when the GDL leaves [0, 1] (some causes at once, some only once the net is confident)".into(),
                    }}
                </label>
            </div>
        </section>
    }
}
