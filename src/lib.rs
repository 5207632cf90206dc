//! gdl-lab: train a 3D segmentation net with the mixed loss (cross-entropy warm-up, then the
//! Generalized Dice Loss) on WebGPU in the browser, or natively from the CLI.
//!
//! The modules follow the data: `volume → sample → model → loss → train → report → view`, and
//! `engine` (a run, driven by commands, with the page's settings from `view`) sits on them.
//! `view` holds the page's pure parts (URL state, slice pixels, chart geometry), tested
//! natively; `app` is the Leptos components over them, `cli` the terminal front end.

pub mod backend;
pub mod engine;
pub mod loss;
pub mod model;
pub mod report;
#[cfg(engine)]
pub mod sample;
pub mod train;
pub mod view;
pub mod volume;

#[cfg(target_arch = "wasm32")]
pub mod app;
#[cfg(not(target_arch = "wasm32"))]
pub mod cli;
#[cfg(all(target_arch = "wasm32", engine))]
pub mod worker;
