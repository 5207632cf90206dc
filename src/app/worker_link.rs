//! The page's end of the worker: starts it, posts commands, hands its events (and a crash) to
//! the callbacks.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use web_sys::{ErrorEvent, MessageEvent, Worker, WorkerOptions, WorkerType};

use super::engine_download::{EngineDownload, compiled_engine};
use crate::engine::web::{from_js, to_js};
use crate::engine::{Command, Envelope, Event};

/// The worker's first script (web/worker_loader.js, copied beside the page by index.html): it
/// waits for the compiled engine, which the page downloads (`engine_download`).
const WORKER_SCRIPT: &str = "./worker_loader.js";

/// Commands wait here until the worker has said its first word: a module worker's loader awaits
/// the wasm, and a message that arrives meanwhile finds no handler and is lost.
type Waiting = Rc<RefCell<Option<Vec<Envelope<Command>>>>>;

pub struct WorkerLink {
    worker: Worker,
    waiting: Waiting,
    // Kept alive as long as the worker is.
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(ErrorEvent)>,
}

impl WorkerLink {
    /// Starts the worker and hands it the engine once downloaded (`on_download` is told how far
    /// the download is, and `None` when it is over); `on_event` gets each event, `on_crash` a
    /// sentence if the worker dies (a panic inside it, its script failing to load, or the
    /// engine's download failing).
    pub fn start(
        mut on_event: impl FnMut(Envelope<Event>) + 'static,
        on_crash: impl Fn(String) + 'static,
        on_download: impl Fn(Option<EngineDownload>) + 'static,
    ) -> Result<Self, String> {
        let options = WorkerOptions::new();
        options.set_type(WorkerType::Module);
        let worker = Worker::new_with_options(WORKER_SCRIPT, &options)
            .map_err(|error| format!("{error:?}"))?;
        let on_crash = Rc::new(on_crash);
        let unreadable = on_crash.clone();
        let waiting: Waiting = Rc::new(RefCell::new(Some(Vec::new())));
        let flush = (worker.clone(), waiting.clone());
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let queued = flush.1.borrow_mut().take();
            for envelope in queued.into_iter().flatten() {
                post(&flush.0, &envelope);
            }
            match from_js::<Event>(&event.data()) {
                Ok(envelope) => on_event(envelope),
                // A page that cannot read its worker (another build's) can do nothing with it.
                Err(message) => unreadable(message),
            }
        });
        let download_failed = on_crash.clone();
        let on_error = Closure::<dyn FnMut(ErrorEvent)>::new(move |event: ErrorEvent| {
            event.prevent_default();
            let message = event.message();
            on_crash(if message.is_empty() {
                "the training worker stopped (its script could not run)".into()
            } else {
                message
            });
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        let receiver = worker.clone();
        let on_download = Rc::new(on_download);
        let told = on_download.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let compiled = compiled_engine(move |progress| told(Some(progress))).await;
            on_download(None);
            match compiled {
                // The loader's first message: the engine starts on it.
                Ok(module) => {
                    if let Err(error) = receiver.post_message(&module) {
                        download_failed(format!("the engine could not be handed over: {error:?}"));
                    }
                }
                Err(message) => download_failed(message),
            }
        });
        Ok(Self {
            worker,
            waiting,
            _on_message: on_message,
            _on_error: on_error,
        })
    }

    pub fn send(&self, envelope: &Envelope<Command>) {
        match &mut *self.waiting.borrow_mut() {
            Some(queue) => queue.push(envelope.clone()),
            None => post(&self.worker, envelope),
        }
    }
}

fn post(worker: &Worker, envelope: &Envelope<Command>) {
    let (message, transfer) = to_js(envelope);
    if let Err(error) = worker.post_message_with_transfer(&message, &transfer) {
        web_sys::console::error_2(&"gdl-lab: could not post to the worker".into(), &error);
    }
}

impl Drop for WorkerLink {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}
