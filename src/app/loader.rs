//! Loading: a drop zone, two file pickers, "Demo scan", the reader's sentence when a file is
//! bad, and a summary of what was loaded.

use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;

use super::browser::read_files;
use super::trainer::Trainer;
use crate::backend::yield_now as yield_to_browser;
use crate::view::PageState;
use crate::view::slice::{class_colour, class_shares};
use crate::volume::files::{load_pair, read_one_scan};
use crate::volume::{Limits, LoadedScan, demo_scan, load_dropped};

fn input_files(id: &str) -> Option<web_sys::FileList> {
    let input: web_sys::HtmlInputElement = document().get_element_by_id(id)?.dyn_into().ok()?;
    input.files().filter(|list| list.length() > 0)
}

#[component]
pub fn Loader(
    scan: RwSignal<Option<Arc<LoadedScan>>>,
    state: RwSignal<PageState>,
    trainer: Trainer,
) -> impl IntoView {
    let error = RwSignal::new(None::<String>);
    let loading = RwSignal::new(None::<String>);
    let dragging = RwSignal::new(false);

    let accept = move |result: Result<LoadedScan, String>| {
        loading.set(None);
        match result {
            Ok(loaded) => {
                error.set(None);
                trainer.reset();
                scan.set(Some(Arc::new(loaded)));
            }
            // The scan already loaded stays: a bad file loses nothing.
            Err(message) => error.set(Some(message)),
        }
    };
    let load_demo = move || {
        let size = state.with_untracked(|s| s.page.demo_size);
        loading.set(Some(format!("making the {size}³ phantom…")));
        spawn_local(async move {
            yield_to_browser().await; // show "loading" before the work starts
            accept(Ok(demo_scan(size)));
        });
    };
    let load_list = move |list: web_sys::FileList| {
        loading.set(Some("reading the files…".into()));
        spawn_local(async move {
            let result = match read_files(list).await {
                Ok(files) => {
                    yield_to_browser().await;
                    load_dropped(&files, &Limits::default())
                }
                Err(message) => Err(message),
            };
            accept(result);
        });
    };
    let load_pickers = move |_| {
        let (Some(image), Some(label)) = (input_files("image-file"), input_files("label-file"))
        else {
            error.set(Some(
                "Choose both files: the image and its label map.".into(),
            ));
            return;
        };
        loading.set(Some("reading the files…".into()));
        spawn_local(async move {
            let result = async {
                let image = read_one_scan(&read_files(image).await?, "image", &Limits::default())?;
                let label =
                    read_one_scan(&read_files(label).await?, "label map", &Limits::default())?;
                load_pair(image.0, image.1, label.0, label.1, &[])
            }
            .await;
            accept(result);
        });
    };

    // The demo is ready when the page opens, and is remade when its size setting changes.
    let demo_size = Memo::new(move |_| state.with(|s| s.page.demo_size));
    Effect::new(move |_| {
        let size = demo_size.get();
        let showing_demo = scan.with_untracked(|s| s.as_ref().is_none_or(|s| s.demo));
        let same = scan.with_untracked(|s| s.as_ref().is_some_and(|s| s.volume.dims[0] == size));
        if showing_demo && !same {
            load_demo();
        }
    });

    view! {
        <section class="panel loader" aria-labelledby="loader-title">
            <h2 id="loader-title">"1 · Scan"</h2>
            <div
                class="dropzone"
                class:dragging=move || dragging.get()
                data-test="dropzone"
                on:dragover=move |event: web_sys::DragEvent| {
                    event.prevent_default();
                    dragging.set(true);
                }
                on:dragleave=move |_| dragging.set(false)
                on:drop=move |event: web_sys::DragEvent| {
                    event.prevent_default();
                    dragging.set(false);
                    if let Some(list) = event.data_transfer().and_then(|d| d.files()) {
                        load_list(list);
                    }
                }
            >
                <p>
                    "Drop the image and its label map here together ("
                    <code>".nii"</code>", "<code>".nii.gz"</code>", or "<code>".hdr"</code>
                    " + "<code>".img"</code>"). They are read in this page and never uploaded."
                </p>
                <div class="pickers">
                    <label>
                        "Image "
                        <input id="image-file" type="file" multiple accept=".nii,.gz,.hdr,.img" />
                    </label>
                    <label>
                        "Label map "
                        <input id="label-file" type="file" multiple accept=".nii,.gz,.hdr,.img" />
                    </label>
                    <button data-test="load-files" on:click=load_pickers>"Load files"</button>
                    <button data-test="demo" on:click=move |_| load_demo()>"Demo scan"</button>
                </div>
            </div>
            <p class="status" aria-live="polite" data-test="load-status">
                {move || loading.get().unwrap_or_default()}
            </p>
            {move || error.get().map(|message| view! {
                <p class="banner error" role="alert" data-test="load-error">{message}</p>
            })}
            {move || scan.get().map(|scan| view! { <ScanSummary scan /> })}
        </section>
    }
}

#[component]
fn ScanSummary(scan: Arc<LoadedScan>) -> impl IntoView {
    let [nx, ny, nz] = scan.volume.dims;
    let [sx, sy, sz] = scan.image.spacing;
    let shares = class_shares(&scan.volume.labels, scan.volume.classes);
    let bar = shares
        .iter()
        .enumerate()
        .map(|(class, share)| {
            let colour = if class == 0 {
                "#c7cdd4".to_string()
            } else {
                class_colour(class)
            };
            let name = scan.class_names[class].clone();
            let title = format!("{name}: {:.2} % of voxels", share * 100.0);
            view! {
                <span
                    class="share"
                    style=format!("flex-grow: {share}; background: {colour}")
                    title=title.clone()
                    aria-label=title
                ></span>
            }
        })
        .collect_view();
    let legend = shares
        .iter()
        .enumerate()
        .map(|(class, share)| {
            let moved = scan.mapping.values[class] != class as i64;
            let mapping = if moved {
                format!(" (file label {} → class {class})", scan.mapping.values[class])
            } else {
                String::new()
            };
            view! {
                <li>
                    <span class="swatch" style=format!("background: {}", if class == 0 { "#c7cdd4".to_string() } else { class_colour(class) })></span>
                    {format!("{}{mapping}: {:.2} %", scan.class_names[class], share * 100.0)}
                </li>
            }
        })
        .collect_view();
    let warnings = scan
        .warnings
        .iter()
        .map(|w| view! { <li>{w.clone()}</li> })
        .collect_view();
    view! {
        <div class="summary" data-test="scan-summary">
            <p>
                <strong data-test="scan-name">{scan.image_name.clone()}</strong>
                " with " {scan.label_name.clone()} ": "
                <span data-test="scan-dims">{format!("{nx}×{ny}×{nz}")}</span>
                {format!(" voxels of {sx:.2}×{sy:.2}×{sz:.2} mm, {} classes", scan.volume.classes)}
            </p>
            <div class="balance" role="img" aria-label="class balance">{bar}</div>
            <ul class="legend">{legend}</ul>
            <ul class="warnings">{warnings}</ul>
        </div>
    }
}
