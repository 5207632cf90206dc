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
        // A folder picker's files carry their path in the folder (web-sys has no getter for
        // `webkitRelativePath`); it groups a folder of case folders into its cases.
        let path = js_sys::Reflect::get(&file, &"webkitRelativePath".into())
            .ok()
            .and_then(|path| path.as_string())
            .filter(|path| !path.is_empty());
        let name = path.unwrap_or_else(|| file.name());
        files.push(read_file(&file, name).await?);
    }
    Ok(files)
}

async fn read_file(file: &web_sys::File, name: String) -> Result<NamedFile, String> {
    let buffer = JsFuture::from(file.array_buffer())
        .await
        .map_err(|error| format!("{name} could not be read: {}", describe(error)))?;
    Ok(NamedFile {
        name,
        bytes: js_sys::Uint8Array::new(&buffer).to_vec(),
    })
}

/// The entries of a drop, taken while its event lasts (the browser empties them afterwards);
/// `None` for a drop without entries (one a script made), whose `files` are read instead.
pub fn dropped_entries(transfer: &web_sys::DataTransfer) -> Option<Vec<web_sys::FileSystemEntry>> {
    let items = transfer.items();
    let entries: Vec<web_sys::FileSystemEntry> = (0..items.length())
        .filter_map(|index| items.get(index))
        .filter_map(|item| item.webkit_get_as_entry().ok().flatten())
        .collect();
    (!entries.is_empty()).then_some(entries)
}

/// Every file under `entries`, folders walked, each named with its path in the drop
/// (`cases/case_000/case_000_t1.nii.gz`), in path order. A dropped folder reaches a page only as
/// an entry whose contents come through callbacks, made into promises here.
pub async fn read_entries(
    entries: Vec<web_sys::FileSystemEntry>,
) -> Result<Vec<NamedFile>, String> {
    let mut files = Vec::new();
    let mut todo = entries;
    while let Some(entry) = todo.pop() {
        let path = entry.full_path().trim_start_matches('/').to_string();
        if entry.is_directory() {
            let reader = entry
                .unchecked_into::<web_sys::FileSystemDirectoryEntry>()
                .create_reader();
            // readEntries gives at most 100 entries a call, then an empty batch.
            loop {
                let batch = JsFuture::from(js_sys::Promise::new(&mut |resolve, reject| {
                    if let Err(error) =
                        reader.read_entries_with_callback_and_callback(&resolve, &reject)
                    {
                        let _ = reject.call1(&JsValue::NULL, &error);
                    }
                }))
                .await
                .map_err(|error| {
                    format!("The folder {path} could not be read: {}", describe(error))
                })?;
                let batch: js_sys::Array = batch.unchecked_into();
                if batch.length() == 0 {
                    break;
                }
                todo.extend(batch.iter().map(|entry| entry.unchecked_into()));
            }
        } else if entry.is_file() {
            let file_entry = entry.unchecked_into::<web_sys::FileSystemFileEntry>();
            let file = JsFuture::from(js_sys::Promise::new(&mut |resolve, reject| {
                file_entry.file_with_callback_and_callback(&resolve, &reject)
            }))
            .await
            .map_err(|error| format!("{path} could not be read: {}", describe(error)))?;
            files.push(read_file(&file.unchecked_into(), path).await?);
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// The files a file input's `change` event chose, read, handed to `then` (a sentence if they
/// could not be read); the input is emptied, so that choosing the same file again is a new
/// choice.
pub fn chosen_files(
    event: &leptos::ev::Event,
    then: impl FnOnce(Result<Vec<NamedFile>, String>) + 'static,
) {
    let Some(input) = event
        .target()
        .and_then(|target| target.dyn_into::<web_sys::HtmlInputElement>().ok())
    else {
        return;
    };
    let Some(list) = input.files().filter(|list| list.length() > 0) else {
        return;
    };
    leptos::task::spawn_local(async move {
        then(read_files(list).await);
        input.set_value("");
    });
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

/// `svg` (`width` × `height` units) drawn at `scale` times its size, as PNG bytes: through an
/// image element and a canvas, so that the browser's own renderer draws it as on screen.
pub async fn svg_to_png(svg: &str, width: f64, height: f64, scale: f64) -> Result<Vec<u8>, String> {
    let image = web_sys::HtmlImageElement::new().map_err(describe)?;
    let loaded = js_sys::Promise::new(&mut |resolve, reject| {
        image.set_onload(Some(&resolve));
        image.set_onerror(Some(&reject));
    });
    let source = js_sys::encode_uri_component(svg);
    image.set_src(&format!("data:image/svg+xml;charset=utf-8,{source}"));
    wasm_bindgen_futures::JsFuture::from(loaded)
        .await
        .map_err(|_| "The figure could not be drawn as an image.".to_string())?;
    let document = window().document().expect("a document");
    let canvas: web_sys::HtmlCanvasElement = document
        .create_element("canvas")
        .map_err(describe)?
        .unchecked_into();
    canvas.set_width((width * scale).ceil() as u32);
    canvas.set_height((height * scale).ceil() as u32);
    let context: web_sys::CanvasRenderingContext2d = canvas
        .get_context("2d")
        .map_err(describe)?
        .ok_or("no 2D canvas")?
        .unchecked_into();
    context
        .draw_image_with_html_image_element_and_dw_and_dh(
            &image,
            0.0,
            0.0,
            width * scale,
            height * scale,
        )
        .map_err(describe)?;
    png_bytes(&canvas)
}

/// The slice views (`planes`, the canvases `canvas-{plane}`) as one PNG at twice their size on
/// screen (times the display's pixel ratio), drawn voxel-sharp, with `caption` above and the
/// `legend` (colour, name) below, and `link` (the run's URL) in a `tEXt` chunk.
pub fn slices_png(
    planes: &[&str],
    caption: &str,
    legend: &[(String, String)],
    link: &str,
) -> Result<Vec<u8>, String> {
    let document = window().document().expect("a document");
    let mut canvases = Vec::new();
    for plane in planes {
        let canvas: web_sys::HtmlCanvasElement = document
            .query_selector(&format!("[data-test='canvas-{plane}']"))
            .map_err(describe)?
            .ok_or_else(|| format!("there is no {plane} view to save"))?
            .unchecked_into();
        canvases.push(canvas);
    }
    let scale = 2.0 * window().device_pixel_ratio().max(1.0);
    let (gap, margin, header, footer) = (8.0, 8.0, 22.0, 20.0);
    let sizes: Vec<(f64, f64)> = canvases
        .iter()
        .map(|c| {
            (
                c.client_width().max(1) as f64,
                c.client_height().max(1) as f64,
            )
        })
        .collect();
    let width = 2.0 * margin
        + sizes.iter().map(|s| s.0).sum::<f64>()
        + gap * (sizes.len().saturating_sub(1)) as f64;
    let tallest = sizes.iter().map(|s| s.1).fold(0.0, f64::max);
    let height = header + tallest + footer + margin;
    let out: web_sys::HtmlCanvasElement = document
        .create_element("canvas")
        .map_err(describe)?
        .unchecked_into();
    out.set_width((width * scale).ceil() as u32);
    out.set_height((height * scale).ceil() as u32);
    let context: web_sys::CanvasRenderingContext2d = out
        .get_context("2d")
        .map_err(describe)?
        .ok_or("no 2D canvas")?
        .unchecked_into();
    context.scale(scale, scale).map_err(describe)?;
    context.set_fill_style_str("#ffffff");
    context.fill_rect(0.0, 0.0, width, height);
    context.set_image_smoothing_enabled(false);
    let mut x = margin;
    for (canvas, (w, h)) in canvases.iter().zip(&sizes) {
        context
            .draw_image_with_html_canvas_element_and_dw_and_dh(canvas, x, header, *w, *h)
            .map_err(describe)?;
        x += w + gap;
    }
    context.set_fill_style_str("#1b1f24");
    context.set_font("12px sans-serif");
    context.fill_text(caption, margin, 15.0).map_err(describe)?;
    let mut x = margin;
    let y = header + tallest + 14.0;
    context.set_font("11px sans-serif");
    for (colour, name) in legend {
        context.set_fill_style_str(colour);
        context.fill_rect(x, y - 9.0, 10.0, 10.0);
        context.set_fill_style_str("#1b1f24");
        context.fill_text(name, x + 14.0, y).map_err(describe)?;
        // (About 6.5 px a character at 11 px: measuring text needs another web-sys feature.)
        x += 14.0 + 6.5 * name.chars().count() as f64 + 12.0;
    }
    let link = if link.is_ascii() {
        link.to_string()
    } else {
        String::from(js_sys::encode_uri(link))
    };
    crate::view::figure::png_with_text(&png_bytes(&out)?, "gdl-lab link", &link)
}

/// A canvas's pixels as PNG bytes.
pub fn png_bytes(canvas: &web_sys::HtmlCanvasElement) -> Result<Vec<u8>, String> {
    let url = canvas.to_data_url().map_err(describe)?;
    let encoded = url
        .split_once(',')
        .map(|(_, data)| data)
        .ok_or("the canvas gave no PNG")?;
    let binary = window().atob(encoded).map_err(describe)?;
    Ok(binary.chars().map(|c| c as u8).collect())
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

/// The value stored under `key` in localStorage (it stays on this machine); none when there is
/// none or it cannot be read.
fn load_stored<T: serde::de::DeserializeOwned + Default>(key: &str) -> T {
    window()
        .local_storage()
        .ok()
        .flatten()
        .and_then(|storage| storage.get_item(key).ok().flatten())
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// Stores `value` under `key` for the next visit; a sentence when the browser refuses (storage
/// full or disabled).
fn store<T: serde::Serialize + ?Sized>(key: &str, value: &T) -> Result<(), String> {
    let storage = window()
        .local_storage()
        .map_err(describe)?
        .ok_or("this browser offers no local storage")?;
    let text = serde_json::to_string(value).map_err(|error| error.to_string())?;
    storage.set_item(key, &text).map_err(describe)
}

/// The runs kept by this page in an earlier visit.
pub fn load_kept_runs() -> Vec<crate::view::runs::KeptRun> {
    load_stored(KEPT_RUNS_KEY)
}

/// Stores the kept runs for the next visit.
pub fn save_kept_runs(runs: &[crate::view::runs::KeptRun]) -> Result<(), String> {
    store(KEPT_RUNS_KEY, runs)
}

const KEPT_TUNINGS_KEY: &str = "gdl-lab-gpu-kernels";

/// The GPU kernel choices of earlier tuning passes on this machine (the GPU is tuned again when
/// they cannot be read).
pub fn load_kept_tunings() -> Vec<crate::engine::protocol::KeptTuning> {
    load_stored(KEPT_TUNINGS_KEY)
}

/// Stores the kernel choices for the next visit.
pub fn save_kept_tunings(kept: &[crate::engine::protocol::KeptTuning]) -> Result<(), String> {
    store(KEPT_TUNINGS_KEY, kept)
}
