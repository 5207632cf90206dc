//! The engine's wasm, downloaded by the page rather than by the worker: the page can then say
//! how far the download is (it is the long part of a first visit), and a worker that is started
//! again after a crash gets the compiled module at once instead of downloading it again.

use std::cell::RefCell;

use wasm_bindgen::prelude::*;
use wasm_bindgen::{JsCast, JsValue};

/// Trunk builds the worker's wasm beside the page under this name (`data-bin` in index.html).
const ENGINE_WASM: &str = "./gdl-lab-worker_bg.wasm";

#[wasm_bindgen(module = "/web/page.js")]
extern "C" {
    #[wasm_bindgen(catch)]
    async fn download_module(
        url: &str,
        expected_bytes: f64,
        on_progress: &Closure<dyn FnMut(f64, f64)>,
    ) -> Result<JsValue, JsValue>;
}

thread_local! {
    /// The compiled engine (a `WebAssembly.Module`), once downloaded.
    static COMPILED: RefCell<Option<JsValue>> = const { RefCell::new(None) };
}

/// How far the engine's download is, for the page to draw.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EngineDownload {
    pub done_bytes: f64,
    /// 0 when neither the build nor the server said how large it is.
    pub total_bytes: f64,
}

impl EngineDownload {
    pub fn compiling(&self) -> bool {
        self.total_bytes > 0.0 && self.done_bytes >= self.total_bytes
    }

    /// The bar can show how far it is (else it shows only that something is happening).
    pub fn measured(&self) -> bool {
        self.total_bytes > 0.0 && !self.compiling()
    }

    pub fn sentence(&self) -> String {
        let megabytes = |bytes: f64| format!("{:.1}", bytes / 1e6);
        if self.compiling() {
            format!(
                "Compiling the training engine ({} MB)…",
                megabytes(self.total_bytes)
            )
        } else if self.total_bytes > 0.0 {
            format!(
                "Downloading the training engine: {} of {} MB…",
                megabytes(self.done_bytes),
                megabytes(self.total_bytes)
            )
        } else {
            format!(
                "Downloading the training engine: {} MB…",
                megabytes(self.done_bytes)
            )
        }
    }
}

/// The engine's size as the release build wrote it into index.html (0 in a dev build).
fn expected_bytes() -> f64 {
    web_sys::window()
        .and_then(|window| window.document())
        .and_then(|document| {
            document
                .query_selector("meta[name='gdl-lab-engine-bytes']")
                .ok()
                .flatten()
        })
        .and_then(|meta| meta.get_attribute("content"))
        .and_then(|content| content.parse().ok())
        .unwrap_or(0.0)
}

/// The compiled engine: downloaded (with `on_progress` told how far) the first time, then kept.
pub async fn compiled_engine(
    on_progress: impl Fn(EngineDownload) + 'static,
) -> Result<JsValue, String> {
    if let Some(module) = COMPILED.with_borrow(Clone::clone) {
        return Ok(module);
    }
    let progress = Closure::<dyn FnMut(f64, f64)>::new(move |done_bytes, total_bytes| {
        on_progress(EngineDownload {
            done_bytes,
            total_bytes,
        })
    });
    let module = download_module(ENGINE_WASM, expected_bytes(), &progress)
        .await
        .map_err(|error| {
            let reason = error
                .dyn_ref::<js_sys::Error>()
                .map(|error| String::from(error.message()))
                .or_else(|| error.as_string())
                .unwrap_or_else(|| "unknown error".into());
            format!(
                "the training engine ({ENGINE_WASM}) could not be downloaded or compiled: {reason}"
            )
        })?;
    COMPILED.set(Some(module.clone()));
    Ok(module)
}
