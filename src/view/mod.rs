//! What the page draws, as plain data: the URL state, slice pixels and chart geometry. No UI
//! framework here, so all of it is tested natively; `app` turns it into components.

pub mod absent;
pub mod chart;
pub mod figure;
pub mod runs;
pub mod scenarios;
pub mod slice;
pub mod state;

pub use state::{BackendChoice, ExportedWeights, PageSettings, PageState};
