//! The Scenarios menu: each scenario is a link to its settings; while the page's settings are a
//! scenario's, its text says what to watch, and, when the scan is the person's own rather than
//! the demo the text was written for, says so and offers the demo.

use leptos::prelude::*;

use super::Trainer;
use crate::view::PageState;
use crate::view::scenarios::{SCENARIOS, Scenario};

/// The scenario whose settings the page has now, if any.
fn active(state: &PageState) -> Option<&'static Scenario> {
    SCENARIOS
        .iter()
        .find(|s| PageState::from_hash(s.settings).is_ok_and(|settings| settings == *state))
}

#[component]
pub fn Scenarios(state: RwSignal<PageState>, trainer: Trainer) -> impl IntoView {
    let links = SCENARIOS
        .iter()
        .map(|scenario| {
            view! {
                <li>
                    <a href=format!("#{}", scenario.settings) data-test=format!("scenario-{}", scenario.key)>
                        {scenario.title}
                    </a>
                </li>
            }
        })
        .collect_view();
    view! {
        <details class="scenarios" data-test="scenarios">
            <summary>"Scenarios: one click sets up a lesson"</summary>
            <p>"Each link sets the settings for one mechanism (the run on screen is kept for comparison); press Play and watch what its text says."</p>
            <ul>{links}</ul>
        </details>
        {move || state.with(active).map(|scenario| view! {
            <p class="banner scenario" role="status" data-test="scenario-text">
                <strong>{scenario.title}": "</strong>{scenario.text}
            </p>
        })}
        {move || {
            let own_scan = trainer.scan.with(|scan| {
                scan.as_ref().filter(|scan| !scan.demo).map(|scan| scan.image_name.clone())
            });
            state.with(active).and(own_scan).map(|name| {
                let size = state.with_untracked(|s| s.page.demo_size);
                view! {
                    <p class="banner warning" data-test="scenario-own-scan">
                        "This lesson was written for the " {size} "³ demo scan; the page is "
                        "training on " <code>{name}</code> ", where its steps and numbers will "
                        "differ. "
                        <button data-test="scenario-use-demo" on:click=move |_| trainer.load_demo(size)>
                            "Use the demo scan"
                        </button>
                        " (your scan stays on this computer; load its files again to return to it)"
                    </p>
                }
            })
        }}
    }
}
