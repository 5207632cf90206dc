//! The engine's home in the browser: a dedicated module Web Worker. Commands from the page are
//! queued as they arrive and run one at a time; between training steps the worker yields, so
//! that new commands (Pause, Reset, a slider's new setting) are heard at once. Only Cancel
//! bypasses the queue, to stop a prediction that is running.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use futures::channel::mpsc;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::backend::{self, ComputeDevice};
use crate::engine::helper_workers::{self, WorkerHelpers};
use crate::engine::web::{from_js, to_js};
use crate::engine::{Command, Devices, Engine, Envelope, Event};

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn post(envelope: &Envelope<Event>) {
    let (message, transfer) = to_js(envelope);
    if let Err(error) = scope().post_message_with_transfer(&message, &transfer) {
        web_sys::console::error_2(&"gdl-lab worker: could not post".into(), &error);
    }
}

/// Starts the worker: listens for commands, finds the devices, then runs the engine's loop;
/// or, in a helper worker that the engine started, computes the shares of batches it is sent.
pub fn start() {
    backend::run_static_constructors();
    console_error_panic_hook::set_once();
    if helper_workers::is_helper() {
        helper_workers::serve();
        return;
    }
    let (sender, receiver) = mpsc::unbounded::<Envelope<Command>>();
    let cancel: Rc<RefCell<Option<Arc<AtomicBool>>>> = Rc::default();
    let heard_cancel = cancel.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        match from_js::<Command>(&event.data()) {
            Ok(envelope) => {
                if envelope.message == Command::Cancel
                    && let Some(flag) = &*heard_cancel.borrow()
                {
                    flag.store(true, Ordering::SeqCst);
                }
                let _ = sender.unbounded_send(envelope);
            }
            Err(message) => post(&Envelope::new(Event::ExportFailed {
                message: format!("The worker got {message}."),
            })),
        }
    });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    wasm_bindgen_futures::spawn_local(run(receiver, cancel));
}

async fn run(
    mut commands: mpsc::UnboundedReceiver<Envelope<Command>>,
    cancel: Rc<RefCell<Option<Arc<AtomicBool>>>>,
) {
    let gpu = backend::acquire().await;
    let devices = Devices {
        gpu: match gpu.fallback_reason {
            Some(reason) => Err(reason),
            None => Ok(gpu),
        },
        cpu: ComputeDevice::flex(None),
    };
    // Checkpoints: the page keeps the latest, to give a new worker if this one crashes.
    // On the CPU, each batch is split among this worker and helpers, one core each. The one
    // helper the defaults' two patches use starts now, while the person looks at the page.
    let helpers = WorkerHelpers::for_this_machine().prestart(1);
    let mut engine = Engine::new(devices, Box::new(|envelope| post(&envelope)))
        .keep_checkpoints()
        .with_batch_helpers(Box::new(helpers));
    *cancel.borrow_mut() = Some(engine.cancel_flag());
    loop {
        // Everything already queued first, in order.
        while let Ok(command) = commands.try_recv() {
            engine.handle(command).await;
        }
        if engine.playing() {
            engine.tick().await;
            // Lets the message handler queue what the page said during the step.
            backend::yield_now().await;
            continue;
        }
        match commands.next().await {
            Some(command) => engine.handle(command).await,
            None => break,
        }
    }
}
