//! Loading: a drop zone, two file pickers, "Demo scan", the reader's sentence when a file is
//! bad, and a summary of what was loaded.

use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;

use super::browser::{dropped_entries, read_entries, read_files};
use super::trainer::Trainer;
use crate::engine::protocol::ScanView;
use crate::engine::{Command, Envelope};
use crate::view::PageState;
use crate::view::slice::{class_colour, class_shares};
use crate::volume::NamedFile;

fn input_files(id: &str) -> Option<web_sys::FileList> {
    let input: web_sys::HtmlInputElement = document().get_element_by_id(id)?.dyn_into().ok()?;
    input.files().filter(|list| list.length() > 0)
}

fn names_and_bytes(files: Vec<NamedFile>) -> (Vec<String>, Vec<Vec<u8>>) {
    files.into_iter().map(|f| (f.name, f.bytes)).unzip()
}

#[component]
pub fn Loader(state: RwSignal<PageState>, trainer: Trainer) -> impl IntoView {
    let scan = trainer.scan;
    let error = trainer.load_error;
    let dragging = RwSignal::new(false);

    let load_demo = move || trainer.load_demo(state.with_untracked(|s| s.page.demo_size));
    let send_files = move |read: Result<Vec<NamedFile>, String>| match read {
        Ok(files) => {
            let (names, buffers) = names_and_bytes(files);
            trainer.load_files(Envelope::with(
                Command::LoadFiles {
                    names,
                    channels: None,
                },
                buffers,
            ));
        }
        Err(message) => error.set(Some(message)),
    };
    let load_list = move |list: web_sys::FileList| {
        spawn_local(async move { send_files(read_files(list).await) });
    };
    let load_entries = move |entries: Vec<web_sys::FileSystemEntry>| {
        spawn_local(async move { send_files(read_entries(entries).await) });
    };
    let load_pickers = move |_| {
        let (Some(image), Some(label)) = (input_files("image-file"), input_files("label-file"))
        else {
            error.set(Some(
                "Choose both files: the image and its label map.".into(),
            ));
            return;
        };
        spawn_local(async move {
            let read =
                async { Ok::<_, String>((read_files(image).await?, read_files(label).await?)) };
            match read.await {
                Ok((image, label)) => {
                    let (image, mut buffers) = names_and_bytes(image);
                    let (label, label_buffers) = names_and_bytes(label);
                    buffers.extend(label_buffers);
                    trainer.load_files(Envelope::with(Command::LoadPair { image, label }, buffers));
                }
                Err(message) => error.set(Some(message)),
            }
        });
    };

    // The demo is ready when the page opens, and is remade when its size setting changes.
    let demo_size = Memo::new(move |_| state.with(|s| s.page.demo_size));
    Effect::new(move |_| {
        let size = demo_size.get();
        let showing_demo = scan.with_untracked(|s| s.as_ref().is_none_or(|s| s.demo));
        if showing_demo && trainer.requested_demo() != Some(size) {
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
                    let Some(transfer) = event.data_transfer() else {
                        return;
                    };
                    // Entries, when the drop has them: a dropped folder comes only that way.
                    match dropped_entries(&transfer) {
                        Some(entries) => load_entries(entries),
                        None => {
                            if let Some(list) = transfer.files() {
                                load_list(list);
                            }
                        }
                    }
                }
            >
                <p>
                    "Drop the image and its label map here together ("
                    <code>".nii"</code>", "<code>".nii.gz"</code>", or "<code>".hdr"</code>
                    " + "<code>".img"</code>"), a case's modalities with its label map, or a folder of case folders. They are read in this page and never uploaded."
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
                    <label title="A folder of case folders (BraTS's layout): each case's modalities become input channels, and the last case is held out">
                        "Folder of cases "
                        <input
                            id="folder-file"
                            type="file"
                            prop:webkitdirectory=true
                            multiple
                            on:change=move |_| {
                                if let Some(list) = input_files("folder-file") {
                                    load_list(list);
                                }
                            }
                        />
                    </label>
                    <button data-test="demo" on:click=move |_| load_demo()>"Demo scan"</button>
                    <button
                        data-test="demo-cases"
                        title="Three phantom cases, each with T1, T1ce, T2 and FLAIR as input channels; the third is held out and scored while training"
                        on:click=move |_| {
                            let size = state.with_untracked(|s| s.page.demo_size);
                            trainer.load_demo_cases(size, 3);
                        }
                    >
                        "Demo: 3 cases, 4 modalities"
                    </button>
                </div>
            </div>
            <p class="status" aria-live="polite" data-test="load-status">
                {move || trainer.progress.get()
                    .filter(|p| !p.task.starts_with("predicting") && !p.task.starts_with("measuring"))
                    .map(|p| format!("{}…", p.task))
                    .unwrap_or_default()}
            </p>
            {move || error.get().map(|message| view! {
                <p class="banner error" role="alert" data-test="load-error">{message}</p>
            })}
            {move || scan.get().map(|scan| view! { <ScanSummary scan trainer /> })}
            {move || trainer.preparation.get().map(|done| view! {
                <p class="preparation" data-test="preparation">
                    {done.summary()}
                    {(done.cropped() || done.resampled()).then_some(
                        " The prediction is mapped back to the scan's grid; “Crop to the head” and “Resample to fit the device” under Settings undo each part.")}
                </p>
            })}
        </section>
    }
}

#[component]
fn ScanSummary(scan: Arc<ScanView>, trainer: Trainer) -> impl IntoView {
    let [nx, ny, nz] = scan.dims;
    let [sx, sy, sz] = scan.spacing;
    let shares = class_shares(&scan.labels, scan.classes);
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
                {format!(" voxels of {sx:.2}×{sy:.2}×{sz:.2} mm, {} classes", scan.classes)}
            </p>
            {(scan.images.len() > 1).then(|| view! { <ChannelPicker scan=scan.clone() trainer /> })}
            <CasePicker trainer />
            <div class="balance" role="img" aria-label="class balance">{bar}</div>
            <ul class="legend">{legend}</ul>
            <ul class="warnings">{warnings}</ul>
        </div>
    }
}

/// Checkboxes over `names` (`checked` at first), each tested as `{test_prefix}-{index}`; every
/// change hands the names checked now to `changed`.
fn check_list(
    names: Vec<String>,
    checked: Vec<bool>,
    test_prefix: &'static str,
    label: impl Fn(usize, &str) -> String,
    changed: impl Fn(Vec<String>) + Clone + 'static,
) -> impl IntoView {
    let on: Vec<RwSignal<bool>> = checked.into_iter().map(RwSignal::new).collect();
    names
        .iter()
        .zip(on.clone())
        .enumerate()
        .map(|(index, (name, this))| {
            let (names, on, changed) = (names.clone(), on.clone(), changed.clone());
            view! {
                <li>
                    <label>
                        <input
                            type="checkbox"
                            data-test=format!("{test_prefix}-{index}")
                            prop:checked=move || this.get()
                            on:change=move |event| {
                                this.set(event_target_checked(&event));
                                changed(
                                    names
                                        .iter()
                                        .zip(&on)
                                        .filter(|(_, on)| on.get_untracked())
                                        .map(|(name, _)| name.clone())
                                        .collect(),
                                );
                            }
                        />
                        {label(index, name)}
                    </label>
                </li>
            }
        })
        .collect_view()
}

/// A case with several images (BraTS's four modalities): each an input channel, in order, with
/// a checkbox to leave it out.
#[component]
fn ChannelPicker(scan: Arc<ScanView>, trainer: Trainer) -> impl IntoView {
    let used = scan
        .images
        .iter()
        .map(|name| scan.modalities.contains(name))
        .collect();
    let boxes = check_list(
        scan.images.clone(),
        used,
        "channel",
        |index, name| format!(" {index}: {name}"),
        move |kept| trainer.pick_channels(kept),
    );
    view! {
        <div class="channels" data-test="channels">
            <p>
                "Input channels: "
                <span data-test="channel-count">{scan.channels}</span>
                {format!(" of {}", scan.images.len())}
                " (each modality normalised on its own; the label map is shared)"
            </p>
            <ol>{boxes}</ol>
        </div>
    }
}

/// A set's cases, each with a checkbox to hold it out: held-out cases never feed a training
/// patch and are scored every `val_every` steps on their own chart.
#[component]
fn CasePicker(trainer: Trainer) -> impl IntoView {
    let cases = trainer.cases;
    move || {
        let (names, held_out): (Vec<String>, Vec<bool>) = cases.get().into_iter().unzip();
        (names.len() > 1).then(|| {
            let count = names.len();
            let boxes = check_list(
                names,
                held_out,
                "held-out",
                |_, name| format!(" {name}"),
                move |held| trainer.hold_out(held),
            );
            view! {
                <div class="cases" data-test="cases">
                    <p>{format!("{count} cases; checked ones are held out (scored, never trained on):")}</p>
                    <ul>{boxes}</ul>
                </div>
            }
        })
    }
}
