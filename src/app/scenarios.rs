//! The Scenarios menu: each scenario is a link to its settings; while the page's settings are a
//! scenario's, its text says what to watch.

use leptos::prelude::*;

use crate::view::PageState;
use crate::view::scenarios::{SCENARIOS, Scenario};

/// The scenario whose settings the page has now, if any.
fn active(state: &PageState) -> Option<&'static Scenario> {
    SCENARIOS
        .iter()
        .find(|s| PageState::from_hash(s.settings).is_ok_and(|settings| settings == *state))
}

#[component]
pub fn Scenarios(state: RwSignal<PageState>) -> impl IntoView {
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
    }
}
