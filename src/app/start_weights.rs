//! "Load weights": a run starts from a net trained before (gdl-lab's export, or a net saved
//! from PyTorch) rather than from a fresh initialisation; the worker checks the file against
//! the settings' net and the scan first.

use leptos::prelude::*;

use super::browser::chosen_files;
use super::trainer::Trainer;

#[component]
pub fn StartWeights(trainer: Trainer) -> impl IntoView {
    let on_change = move |event: leptos::ev::Event| {
        chosen_files(&event, move |read| match read {
            Ok(mut files) if !files.is_empty() => {
                let file = files.remove(0);
                trainer.load_weights(file.name, file.bytes);
            }
            Ok(_) => {}
            Err(message) => trainer.weights_refused.set(Some(message)),
        });
    };
    view! {
        <div class="start-weights">
            <div class="file-row">
                <label for="load-weights">"Start from weights (.safetensors)"</label>
                <input id="load-weights" data-test="load-weights" type="file" accept=".safetensors"
                    on:change=on_change />
            </div>
            {move || trainer.weights.get().map(|sentence| view! {
                <p class="banner" role="status" data-test="weights-loaded">
                    {sentence}" "
                    <button data-test="forget-weights" on:click=move |_| trainer.forget_weights()>
                        "Start from a fresh net"
                    </button>
                </p>
            })}
            {move || trainer.weights_refused.get().map(|message| view! {
                <p class="banner error" role="alert" data-test="weights-error">{message}</p>
            })}
        </div>
    }
}
