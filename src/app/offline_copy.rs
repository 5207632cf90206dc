//! The offline copy: the release build's service worker (sw.js, written by `./x dist`) keeps
//! the page, the engine and the demo, so that after one visit gdl-lab opens and trains without
//! a network. The page says when it is saved, and when a newer version waits for a reload.

use leptos::prelude::*;
use wasm_bindgen::prelude::*;

use super::trainer::Trainer;

#[wasm_bindgen(module = "/web/page.js")]
extern "C" {
    fn register_offline_copy(on_state: &Closure<dyn FnMut(String)>);
    fn use_new_version();
}

/// What the service worker says of this page.
#[derive(Clone, Copy, Debug, PartialEq)]
enum CopyState {
    /// This version works offline.
    Saved,
    /// A newer version is saved and takes over at a reload.
    Update,
}

/// Registers the service worker once the engine is running, so that its download of the
/// page's files (mostly answered by the browser's cache by then) does not slow the first
/// visit's own. Dev builds (`./x serve --dev`) have no sw.js and register nothing: a cached
/// page would hide every edit.
#[component]
pub fn OfflineCopy(trainer: Trainer) -> impl IntoView {
    let state = RwSignal::new(None::<CopyState>);
    if !cfg!(debug_assertions) {
        let registered = StoredValue::new(false);
        Effect::new(move |_| {
            if trainer.devices.with(Option::is_some) && !registered.get_value() {
                registered.set_value(true);
                let on_state = Closure::<dyn FnMut(String)>::new(move |said: String| {
                    state.set(match said.as_str() {
                        "update" => Some(CopyState::Update),
                        _ => Some(CopyState::Saved),
                    })
                });
                register_offline_copy(&on_state);
                // The service worker tells its state for as long as the page lives.
                on_state.forget();
            }
        });
    }
    move || match state.get() {
        None => None,
        Some(CopyState::Saved) => Some(
            view! {
                <p class="offline-note" data-test="offline-saved">
                    "Saved on this device: gdl-lab opens and trains here without a network."
                </p>
            }
            .into_any(),
        ),
        Some(CopyState::Update) => Some(
            view! {
                <div class="banner note" role="status" data-test="offline-update">
                    <p>"A newer version of gdl-lab is saved on this device."</p>
                    <button data-test="use-new-version" on:click=move |_| use_new_version()>
                        "Reload to use it"
                    </button>
                </div>
            }
            .into_any(),
        ),
    }
}
