//! Weights a run starts from (the page's "Load weights", `gdl-lab train --init-weights`):
//! gdl-lab's own `.safetensors` or a net saved from PyTorch, checked against the net the
//! settings ask for and the scan's channels and classes before anything changes, then given to
//! every new session. Adam's moments are not in such a file, so Adam starts afresh.

use super::Engine;
use crate::engine::protocol::Event;
use crate::model::weights::from_safetensors;
use crate::model::weights_info::describe_weights;
use crate::train::{TrainError, TrainingSession};

/// True for channel names that say nothing (a single scan's `image`).
fn generic(channels: &[String]) -> bool {
    channels.iter().all(|c| c == "image")
}

impl Engine {
    /// Starts the next run from `bytes` when they fit; a sentence, and nothing changed, when not.
    pub(super) fn load_weights(&mut self, name: String, bytes: Vec<u8>) {
        match self.check_weights(&bytes) {
            Ok(description) => {
                self.drop_session(); // the next run starts from them
                self.init_weights = Some((name.clone(), bytes));
                let loaded = format!(
                    "{name}: {description}. Training starts from these weights (Adam starts \
                     afresh: its moments are not in the file)."
                );
                self.emit(Event::Weights {
                    loaded: Some(loaded),
                    refused: None,
                });
            }
            Err(message) => self.emit(Event::Weights {
                loaded: None,
                refused: Some(format!("{name}: {message}")),
            }),
        }
    }

    /// Back to freshly initialised nets, from a new run.
    pub(super) fn forget_weights(&mut self) {
        if self.init_weights.take().is_some() {
            self.drop_session();
        }
        self.emit(Event::Weights {
            loaded: None,
            refused: None,
        });
    }

    /// What the weights are, once they are known to fit the net the settings ask for on this
    /// scan: its channels by name (when both sides name them) and every tensor's shape.
    fn check_weights(&self, bytes: &[u8]) -> Result<String, String> {
        let device = &self.devices.cpu.device;
        let info = describe_weights(bytes, device)?;
        let Some(scan) = &self.scan else {
            return Err(
                "Load a scan first: weights are checked against its channels and classes.".into(),
            );
        };
        let config = &self.settings.config;
        if config.pretrain_epochs > 0 {
            return Err(
                "Loaded weights replace the pre-training of the Simple net: set \
                        “Pre-train Simple” to 0 epochs first."
                    .into(),
            );
        }
        match (&info.regions, config.targets) {
            (Some(_), crate::volume::Targets::Classes) => {
                return Err(format!(
                    "The file holds {}: set Outputs to the BraTS regions first.",
                    info.describe()
                ));
            }
            (None, crate::volume::Targets::Regions) if info.label_values.is_some() => {
                return Err(format!(
                    "The file holds {}, one output per class: set Outputs to one per class \
                     first.",
                    info.describe()
                ));
            }
            _ => {}
        }
        let channels = self.channel_names();
        if !info.channels.is_empty() && !generic(&info.channels) && !generic(&channels) {
            if let Some(missing) = info.channels.iter().find(|c| !channels.contains(c)) {
                return Err(format!(
                    "The net reads {} (in this order); this scan has no {missing} (it has {}).",
                    info.channels.join(", "),
                    channels.join(", ")
                ));
            }
            if info.channels != channels {
                return Err(format!(
                    "The net reads {} in this order; this scan's channels are {}. Load the scan \
                     with the same channels.",
                    info.channels.join(", "),
                    channels.join(", ")
                ));
            }
        }
        let kind = config.model;
        let outputs = config.targets.output_channels(scan.volume.classes);
        let net = kind.init_for(scan.volume.channels, outputs, device);
        from_safetensors(bytes, net).map_err(|error| {
            format!(
                "{error} The file holds {}; the settings train a {} for {} channel{} and {} \
                 output{} ({}).",
                info.describe(),
                kind.name(),
                scan.volume.channels,
                if scan.volume.channels == 1 { "" } else { "s" },
                outputs,
                if outputs == 1 { "" } else { "s" },
                match config.targets {
                    crate::volume::Targets::Classes => "one per class",
                    crate::volume::Targets::Regions => "the regions WT, TC and ET",
                }
            )
        })?;
        Ok(info.describe())
    }

    /// A new session's net replaced by the loaded weights, if any.
    pub(super) fn start_from_loaded_weights(
        &self,
        session: &mut TrainingSession,
    ) -> Result<(), TrainError> {
        let Some((name, bytes)) = &self.init_weights else {
            return Ok(());
        };
        let kind = session.net().kind();
        session
            .restore_checkpoint(bytes, None, kind, 0, 0)
            .map_err(|error| TrainError::Config(format!("{name}: {error}")))
    }
}
