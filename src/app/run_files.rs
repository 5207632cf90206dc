//! "Save run" and "Open run": the whole run in one file, to go on with it later or in another
//! browser (the worker writes and reads the file; `engine::runner::saved_runs`).

use leptos::prelude::*;

use super::browser::chosen_files;
use super::trainer::Trainer;

#[component]
pub fn RunFiles(trainer: Trainer) -> impl IntoView {
    let with_scan = RwSignal::new(false);
    let on_open = move |event: leptos::ev::Event| {
        chosen_files(&event, move |read| match read {
            Ok(mut files) if !files.is_empty() => trainer.open_run(files.remove(0).bytes),
            Ok(_) => {}
            Err(message) => trainer.run_note.set(Some(Err(message))),
        });
    };
    view! {
        <div class="run-files">
            <div class="file-row">
                <button data-test="save-run" title="Settings, weights, Adam's moments, the sampler's position, the history and the held-out scores, with the SHA-256 of the scan's files"
                    on:click=move |_| trainer.save_run(with_scan.get_untracked())>"Save run"</button>
                <label>
                    <input type="checkbox" data-test="save-run-scan" prop:checked=move || with_scan.get()
                        on:change=move |event| with_scan.set(event_target_checked(&event)) />
                    " with the scan's files"
                </label>
            </div>
            <div class="file-row">
                <label for="open-run">"Open run (.gdlrun)"</label>
                <input id="open-run" data-test="open-run" type="file" accept=".gdlrun" on:change=on_open />
            </div>
            {move || trainer.run_note.get().map(|note| match note {
                Ok(sentence) => view! {
                    <p class="banner" role="status" data-test="run-opened">{sentence}</p>
                }.into_any(),
                Err(message) => view! {
                    <p class="banner error" role="alert" data-test="run-refused">{message}</p>
                }.into_any(),
            })}
        </div>
    }
}
