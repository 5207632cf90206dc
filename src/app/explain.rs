//! "What is this?": a short note beside a chart or a lab row, closed until asked for. A
//! `<details>` opens on a click and from the keyboard (Tab to it, Enter or Space) with no script.

use leptos::prelude::*;

#[component]
pub fn Explain(
    /// One or two sentences.
    text: &'static str,
) -> impl IntoView {
    view! {
        <details class="explain">
            <summary>"what is this?"</summary>
            <p>{text}</p>
        </details>
    }
}
