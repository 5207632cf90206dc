//! The page's CPU path on every core: the training worker starts helper workers (the same
//! engine wasm, started under [`HELPER_NAME`]) that each compute the gradient of a share of a
//! step's batch ([`crate::train::session::shard`]). Both ends are here: [`WorkerHelpers`] in
//! the training worker, [`serve`] in a helper.
//!
//! Why workers and not wasm threads: burn's WebGPU backend cannot be built into a wasm module
//! with atomics, so threads would need a second, CPU-only build of the worker on a nightly
//! toolchain (with `rust-src` for `-Z build-std`), and a page that is cross-origin isolated.
//! Workers need neither; they reach as many cores as the batch has patches.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures::StreamExt;
use futures::channel::{mpsc, oneshot};
use serde::{Deserialize, Serialize};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use web_sys::{
    DedicatedWorkerGlobalScope, ErrorEvent, MessageEvent, Worker, WorkerOptions, WorkerType,
};

use super::Envelope;
use super::web::{from_js, to_js};
use crate::backend::{self, ComputeDevice};
use crate::train::session::shard::{
    BatchHelpers, ShardFuture, ShardRequest, ShardResult, ShardWorker,
};

/// The name a helper worker is started under; the engine's wasm starts as a helper when its
/// worker has it ([`crate::worker::start`]).
pub const HELPER_NAME: &str = "gdl-lab-helper";

/// The most helpers a training worker starts (a batch seldom has more patches).
pub const MOST_HELPERS: usize = 15;

/// The same first script as the training worker's (beside the page; a worker resolves it
/// against its own script, which lies there too).
const WORKER_SCRIPT: &str = "./worker_loader.js";

/// What a helper says.
#[derive(Debug, Serialize, Deserialize)]
enum HelperEvent {
    /// It listens: requests may be posted.
    Ready,
    Done(ShardResult),
    Failed(String),
}

type Answer = Result<ShardResult, String>;

/// One helper worker, as the training worker sees it.
struct Helper {
    worker: Worker,
    /// Requests posted before the helper said it is ready (a module worker's messages before
    /// its handler is set are lost), posted when it is.
    waiting: Rc<RefCell<Option<Vec<Envelope<ShardRequest>>>>>,
    /// Where its next answer goes.
    answer: Rc<RefCell<Option<oneshot::Sender<Answer>>>>,
    /// Set when it crashed; it is not asked again.
    dead: Rc<Cell<bool>>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(ErrorEvent)>,
}

impl Helper {
    fn start() -> Result<Self, String> {
        let options = WorkerOptions::new();
        options.set_type(WorkerType::Module);
        options.set_name(HELPER_NAME);
        let worker = Worker::new_with_options(WORKER_SCRIPT, &options)
            .map_err(|error| format!("a helper worker could not start: {error:?}"))?;
        let waiting: Rc<RefCell<Option<Vec<Envelope<ShardRequest>>>>> =
            Rc::new(RefCell::new(Some(Vec::new())));
        let answer: Rc<RefCell<Option<oneshot::Sender<Answer>>>> = Rc::default();
        let dead = Rc::new(Cell::new(false));
        let (flush, told) = ((worker.clone(), waiting.clone()), answer.clone());
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let answer = match from_js::<HelperEvent>(&event.data()) {
                Ok(envelope) => match envelope.message {
                    HelperEvent::Ready => {
                        for request in flush.1.borrow_mut().take().into_iter().flatten() {
                            post(&flush.0, &request);
                        }
                        return;
                    }
                    HelperEvent::Done(result) => Ok(result),
                    HelperEvent::Failed(message) => Err(message),
                },
                Err(message) => Err(format!("its answer could not be read ({message})")),
            };
            if let Some(sender) = told.borrow_mut().take() {
                let _ = sender.send(answer);
            }
        });
        let (crashed, told) = (dead.clone(), answer.clone());
        let on_error = Closure::<dyn FnMut(ErrorEvent)>::new(move |event: ErrorEvent| {
            event.prevent_default();
            crashed.set(true);
            let message = match event.message() {
                message if message.is_empty() => "it stopped".to_string(),
                message => message,
            };
            if let Some(sender) = told.borrow_mut().take() {
                let _ = sender.send(Err(message));
            }
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        // The loader's first message: the engine's compiled module, which this worker was
        // started with (no second download or compilation).
        worker
            .post_message(&wasm_bindgen::module())
            .map_err(|error| format!("a helper worker could not be given the engine: {error:?}"))?;
        Ok(Self {
            worker,
            waiting,
            answer,
            dead,
            _on_message: on_message,
            _on_error: on_error,
        })
    }

    /// Posts `request` (or keeps it until the helper is ready); its answer arrives on the
    /// returned channel.
    fn ask(&self, request: ShardRequest) -> oneshot::Receiver<Answer> {
        let (sender, receiver) = oneshot::channel();
        *self.answer.borrow_mut() = Some(sender);
        let envelope = Envelope::new(request);
        match &mut *self.waiting.borrow_mut() {
            Some(queue) => queue.push(envelope),
            None => post(&self.worker, &envelope),
        }
        receiver
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}

fn post<T: Serialize>(worker: &Worker, envelope: &Envelope<T>) {
    let (message, transfer) = to_js(envelope);
    if let Err(error) = worker.post_message_with_transfer(&message, &transfer) {
        web_sys::console::error_2(&"gdl-lab: could not post to a helper".into(), &error);
    }
}

/// The training worker's helpers, started when a step first needs them.
pub struct WorkerHelpers {
    most: usize,
    started: RefCell<Vec<Helper>>,
}

impl WorkerHelpers {
    /// As many helpers as the browser reports cores besides this worker's (at most
    /// [`MOST_HELPERS`]).
    pub fn for_this_machine() -> Self {
        let cores = js_sys::Reflect::get(&js_sys::global(), &"navigator".into())
            .and_then(|navigator| js_sys::Reflect::get(&navigator, &"hardwareConcurrency".into()))
            .ok()
            .and_then(|cores| cores.as_f64())
            .map_or(1, |cores| cores.max(1.0) as usize);
        Self {
            most: (cores - 1).min(MOST_HELPERS),
            started: RefCell::default(),
        }
    }

    /// Starts `count` helpers now (at most as many as there are cores for), so that the first
    /// step that splits its batch does not wait for a worker to start (the engine's module
    /// instantiated and initialised again: the defaults' first step took 0.8 s with it, the
    /// next ones 0.16 s). Later ones start when a batch needs them.
    pub fn prestart(self, count: usize) -> Self {
        {
            let mut started = self.started.borrow_mut();
            while started.len() < count.min(self.most) {
                match Helper::start() {
                    Ok(helper) => started.push(helper),
                    // Tried again, and said, when a step needs it.
                    Err(_) => break,
                }
            }
        }
        self
    }
}

impl BatchHelpers for WorkerHelpers {
    fn count(&self) -> usize {
        self.most
    }

    fn compute(&self, requests: Vec<ShardRequest>) -> ShardFuture {
        let mut started = self.started.borrow_mut();
        // A crashed helper is replaced.
        started.retain(|helper| !helper.dead.get());
        let mut receivers = Vec::with_capacity(requests.len());
        for (index, request) in requests.into_iter().enumerate() {
            if started.len() <= index {
                match Helper::start() {
                    Ok(helper) => started.push(helper),
                    Err(message) => {
                        let (sender, receiver) = oneshot::channel();
                        let _ = sender.send(Err(message));
                        receivers.push(receiver);
                        continue;
                    }
                }
            }
            receivers.push(started[index].ask(request));
        }
        Box::pin(async move {
            let mut answers = Vec::with_capacity(receivers.len());
            for receiver in receivers {
                answers.push(
                    receiver
                        .await
                        .unwrap_or_else(|_| Err("it was stopped before it answered".into())),
                );
            }
            answers
        })
    }
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn answer(event: &HelperEvent) {
    let (message, transfer) = to_js(&Envelope::new(event));
    if let Err(error) = scope().post_message_with_transfer(&message, &transfer) {
        web_sys::console::error_2(&"gdl-lab helper: could not post".into(), &error);
    }
}

/// A helper's life: computes each share it is sent on the CPU backend (one thread, this
/// worker's), one at a time, and answers with its gradients or a sentence.
pub fn serve() {
    let (sender, mut requests) = mpsc::unbounded::<Result<ShardRequest, String>>();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let request = from_js::<ShardRequest>(&event.data()).map(|envelope| envelope.message);
        let _ = sender.unbounded_send(request);
    });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    wasm_bindgen_futures::spawn_local(async move {
        let mut worker = ShardWorker::new(ComputeDevice::flex(None).device);
        answer(&HelperEvent::Ready);
        while let Some(request) = requests.next().await {
            let event = match request {
                Ok(request) => match worker.compute(request).await {
                    Ok(result) => HelperEvent::Done(result),
                    Err(error) => HelperEvent::Failed(error.to_string()),
                },
                Err(message) => {
                    HelperEvent::Failed(format!("its request could not be read ({message})"))
                }
            };
            answer(&event);
            backend::yield_now().await;
        }
    });
}

/// True in a helper worker (started under [`HELPER_NAME`]).
pub fn is_helper() -> bool {
    scope().name() == HELPER_NAME
}
