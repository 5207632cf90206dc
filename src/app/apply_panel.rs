//! "Apply to a scan": the current net predicts another case (its images, and its label map if
//! it has one), shown in the slice views with its hard Dice and exportable in its own geometry,
//! while the run and the training scan stay as they are.

use leptos::prelude::*;

use super::browser::chosen_files;
use super::trainer::Trainer;
use crate::engine::Command;

#[component]
pub fn ApplyPanel(trainer: Trainer) -> impl IntoView {
    let on_change = move |event: leptos::ev::Event| {
        chosen_files(&event, move |read| match read {
            Ok(files) => trainer.apply(files),
            Err(message) => trainer.apply_note.set(Some(Err(message))),
        });
    };
    let showing = trainer.showing_applied;
    view! {
        <div class="apply">
            <div class="file-row">
                <label for="apply-files">"Apply to a scan (its images, and its label map to score it)"</label>
                <input id="apply-files" data-test="apply-files" type="file" multiple
                    accept=".nii,.gz,.hdr,.img" on:change=on_change />
            </div>
            {move || trainer.apply_note.get().map(|note| match note {
                Ok(sentence) => view! {
                    <p class="banner" role="status" data-test="applied">{sentence}" "
                        <button data-test="show-applied" on:click=move |_| showing.update(|s| *s = !*s)>
                            {move || if showing.get() { "Show the training scan" } else { "Show it in the slices" }}
                        </button>
                        " "
                        <button data-test="export-applied" on:click=move |_| trainer.export(Command::ExportApplied)>
                            "Its prediction (.nii.gz)"
                        </button>
                    </p>
                }.into_any(),
                Err(message) => view! {
                    <p class="banner error" role="alert" data-test="apply-error">{message}</p>
                }.into_any(),
            })}
        </div>
    }
}
