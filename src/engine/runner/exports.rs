//! The files a person can download: the prediction as NIfTI in the scan's own grid, the weights
//! as safetensors (burn's names or PyTorch's, with the module that loads them).

use super::Engine;
use crate::engine::protocol::{Envelope, Event};
use crate::engine::pytorch::{MODULE_FILE, python_module};
use crate::model::weights::{pytorch_key, to_safetensors, to_safetensors_named};
use crate::view::ExportedWeights;
use crate::volume::files::modality_keys;
use crate::volume::write_label_map;

impl Engine {
    pub(super) fn export(&mut self, name: &str, mime: &str, bytes: Vec<u8>) {
        (self.sink)(Envelope::with(
            Event::Export {
                name: name.to_string(),
                mime: mime.to_string(),
            },
            vec![bytes],
        ));
    }

    pub(super) fn export_failed(&mut self, message: &str) {
        self.emit(Event::ExportFailed {
            message: message.to_string(),
        });
    }

    /// The prediction in the scan's own grid and label values, named after the scan.
    pub(super) fn export_prediction(&mut self) {
        let (Some(scan), Some(evaluation)) = (self.scan.clone(), &self.evaluation) else {
            self.export_failed("Predict the volume first (“Predict now”).");
            return;
        };
        let labels = scan.mapping.file_values(&evaluation.labels);
        let bytes = match write_label_map(&labels, &scan.image) {
            Ok(bytes) => bytes,
            Err(message) => {
                self.export_failed(&message);
                return;
            }
        };
        let stem = if scan.demo {
            "phantom".to_string()
        } else {
            scan_stem(&scan.image_name)
        };
        let name = format!("{stem}_prediction.nii.gz");
        self.export(&name, "application/gzip", bytes);
    }

    /// The net's input channels in order, by modality (`t1`, `t1ce`, … as the set's cases
    /// share them; `image` for a single scan of one image).
    pub(super) fn channel_names(&self) -> Vec<String> {
        match &self.scan {
            Some(scan) if !scan.modalities.is_empty() => modality_keys(&scan.modalities),
            _ => vec!["image".to_string()],
        }
    }

    /// The weights as `.safetensors` under burn's module paths, or (`for_pytorch`) under
    /// PyTorch's names followed by `gdl_lab_model.py`, which loads them.
    pub(super) async fn export_weights(&mut self, for_pytorch: bool) {
        if !self.ensure_session().await {
            return;
        }
        let session = self.session.as_ref().expect("just ensured");
        // `weights=best`: the net of the step with the best validation Dice, when there is one.
        let (steps, net) = match (&self.best, self.settings.page.weights) {
            (Some((step, net)), ExportedWeights::Best) => (*step, net),
            _ => (session.steps_done(), session.net()),
        };
        let channels = self.channel_names();
        // The file's label value of each class, so that a prediction made later from these
        // weights alone (`gdl-lab predict`) is written with the values trained on.
        let label_values = self.scan.as_ref().map_or_else(String::new, |scan| {
            let values: Vec<String> = scan.mapping.values.iter().map(i64::to_string).collect();
            values.join(",")
        });
        let metadata = [
            ("format", "gdl-lab".to_string()),
            ("model", net.kind().name().to_string()),
            ("classes", session.volume().classes.to_string()),
            ("channels", channels.join(",")),
            ("label_values", label_values),
            ("steps", steps.to_string()),
            ("settings", self.settings.to_hash()),
            ("targets", self.settings.config.targets.name().to_string()),
            (
                "region_tissues",
                session
                    .region_map()
                    .map_or_else(String::new, |map| map.to_metadata()),
            ),
        ];
        let name = format!(
            "gdl-lab-{}-step{}{}.safetensors",
            net.kind().name(),
            steps,
            if for_pytorch { "-pytorch" } else { "" }
        );
        let written = if for_pytorch {
            to_safetensors_named(net, &metadata, pytorch_key).await
        } else {
            to_safetensors(net, &metadata).await
        };
        let module = match (&self.scan, for_pytorch) {
            (Some(scan), true) => Some(python_module(
                &self.settings.config,
                &scan.mapping,
                &channels,
                session.region_map(),
            )),
            _ => None,
        };
        match written {
            Ok(bytes) => self.export(&name, "application/octet-stream", bytes),
            Err(message) => return self.export_failed(&message),
        }
        if let Some(module) = module {
            self.export(MODULE_FILE, "text/x-python", module.into_bytes());
        }
    }
}

/// "BraTS2021_00000_t1" from "BraTS2021_00000_t1.nii.gz", safe as a file name.
pub(super) fn scan_stem(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let stem = [".nii.gz", ".nii", ".hdr.gz", ".hdr", ".img.gz", ".img"]
        .iter()
        .find_map(|ext| {
            lower
                .ends_with(ext)
                .then(|| &name[..name.len() - ext.len()])
        })
        .unwrap_or(name);
    stem.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn exports_are_named_after_the_scan() {
        assert_eq!(scan_stem("BraTS2021_00000_t1.nii.gz"), "BraTS2021_00000_t1");
        assert_eq!(scan_stem("brain.HDR"), "brain");
        assert_eq!(scan_stem("my scan.nii"), "my_scan");
        assert_eq!(scan_stem("../x"), ".._x");
    }
}
