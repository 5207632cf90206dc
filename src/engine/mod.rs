//! One engine for every front end: it owns the scan and the training session, takes commands
//! in order and reports what happened as events. The page runs it in a Web Worker (`worker`),
//! the CLI and the tests call it directly.

#[cfg(all(target_arch = "wasm32", engine))]
pub mod helper_workers;
#[cfg(engine)]
pub mod probe;
pub mod protocol;
pub mod pytorch;
#[cfg(engine)]
pub mod runner;
#[cfg(engine)]
pub mod tuning;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use protocol::{Command, Envelope, Event};
#[cfg(engine)]
pub use runner::{Devices, Engine, ScanIdentity, Sink};
