//! The few browser calls the page needs: read a picked file, save bytes as a download, the URL
//! hash, the clipboard. Nothing here touches the network.

use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::volume::NamedFile;

fn window() -> web_sys::Window {
    web_sys::window().expect("a browser window")
}

fn describe(error: JsValue) -> String {
    error
        .as_string()
        .or_else(|| {
            error
                .dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| format!("{error:?}"))
}

/// The files of a file list (an `<input type=file>` or a drop), read into memory.
pub async fn read_files(list: web_sys::FileList) -> Result<Vec<NamedFile>, String> {
    let mut files = Vec::new();
    for index in 0..list.length() {
        let Some(file) = list.item(index) else {
            continue;
        };
        let buffer = JsFuture::from(file.array_buffer())
            .await
            .map_err(|error| format!("{} could not be read: {}", file.name(), describe(error)))?;
        files.push(NamedFile {
            name: file.name(),
            bytes: js_sys::Uint8Array::new(&buffer).to_vec(),
        });
    }
    Ok(files)
}

/// Offers `bytes` as a download named `name` (a Blob URL: the data stays in the browser).
pub fn download(name: &str, mime: &str, bytes: &[u8]) -> Result<(), String> {
    let array = js_sys::Uint8Array::from(bytes);
    let parts = js_sys::Array::of1(&array);
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &options)
        .map_err(describe)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(describe)?;
    let document = window().document().expect("a document");
    let anchor: web_sys::HtmlAnchorElement = document
        .create_element("a")
        .map_err(describe)?
        .unchecked_into();
    anchor.set_href(&url);
    anchor.set_download(name);
    anchor.click();
    // The click has started the download; the URL can go once the event loop has turned.
    let revoke = url.clone();
    gloo_timers::callback::Timeout::new(1_000, move || {
        let _ = web_sys::Url::revoke_object_url(&revoke);
    })
    .forget();
    Ok(())
}

/// The URL hash without its `#`.
pub fn hash() -> String {
    window()
        .location()
        .hash()
        .unwrap_or_default()
        .trim_start_matches('#')
        .to_string()
}

/// Replaces the hash without adding a history entry or reloading.
pub fn set_hash(hash: &str) {
    let location = window().location();
    let base = format!(
        "{}{}",
        location.pathname().unwrap_or_default(),
        location.search().unwrap_or_default()
    );
    let url = if hash.is_empty() {
        base
    } else {
        format!("{base}#{hash}")
    };
    if let Ok(history) = window().history() {
        let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&url));
    }
}

/// The page's full address, hash included.
pub fn href() -> String {
    window().location().href().unwrap_or_default()
}

/// Copies `text`; an error when the browser refuses (no permission, not focused).
pub async fn copy_text(text: &str) -> Result<(), String> {
    let clipboard = window().navigator().clipboard();
    JsFuture::from(clipboard.write_text(text))
        .await
        .map(|_| ())
        .map_err(describe)
}

/// `window.gdlLab.crashWorker()`: lets the browser test make the worker panic, as a bug inside
/// burn would, to check that the page survives it and Resume goes on.
pub fn expose_test_hooks(trainer: super::Trainer) {
    let hooks = js_sys::Object::new();
    let crash = wasm_bindgen::closure::Closure::<dyn Fn()>::new(move || trainer.crash_worker());
    let _ = js_sys::Reflect::set(&hooks, &"crashWorker".into(), crash.as_ref());
    crash.forget();
    let _ = js_sys::Reflect::set(&window(), &"gdlLab".into(), &hooks);
}

const KEPT_RUNS_KEY: &str = "gdl-lab-kept-runs";

/// The runs kept by this page in an earlier visit (localStorage: they stay on this machine);
/// none when there are none or they cannot be read.
pub fn load_kept_runs() -> Vec<crate::view::runs::KeptRun> {
    window()
        .local_storage()
        .ok()
        .flatten()
        .and_then(|storage| storage.get_item(KEPT_RUNS_KEY).ok().flatten())
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// Stores the kept runs for the next visit; a sentence when the browser refuses (storage full
/// or disabled).
pub fn save_kept_runs(runs: &[crate::view::runs::KeptRun]) -> Result<(), String> {
    let storage = window()
        .local_storage()
        .map_err(describe)?
        .ok_or("this browser offers no local storage")?;
    let text = serde_json::to_string(runs).map_err(|error| error.to_string())?;
    storage.set_item(KEPT_RUNS_KEY, &text).map_err(describe)
}
