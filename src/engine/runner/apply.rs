//! "Apply to a scan": the current net predicts a scan it never trained on, prepared as the
//! training scan is (crop, resample, sliding window), put back in its own grid and scored there
//! when it brings a label map; its prediction can be exported. The run and the training scan
//! stay as they are.

use super::Engine;
use crate::backend::working_voxel_budget;
use crate::engine::protocol::{AppliedView, Envelope, Event, f32_bytes};
use crate::volume::files::{read_scans, sounds_like_labels};
use crate::volume::new_scan::new_scan;
use crate::volume::preprocess::PrepareOptions;
use crate::volume::{LabelMapping, Limits, NamedFile, Volume, write_label_map};

/// The scan applied to last, for its export.
pub(super) struct AppliedCase {
    name: String,
    image: Volume,
    mapping: LabelMapping,
    labels: Vec<u8>,
}

impl Engine {
    pub(super) async fn apply(&mut self, files: Vec<NamedFile>) {
        match self.applied_view(files).await {
            Ok((view, buffers)) => {
                (self.sink)(Envelope::with(
                    Event::Applied { applied: Ok(view) },
                    buffers,
                ));
            }
            Err(message) => self.emit(Event::Applied {
                applied: Err(message),
            }),
        }
    }

    async fn applied_view(
        &mut self,
        files: Vec<NamedFile>,
    ) -> Result<(AppliedView, Vec<Vec<u8>>), String> {
        let Some(scan) = self.scan.clone() else {
            return Err(
                "Load a scan and train on it (or load weights) first: the net \
                        applied is the one this page trains."
                    .into(),
            );
        };
        if !self.ensure_session().await {
            return Err("There is no net to apply (see why above).".into());
        }
        self.progress("applying the net to the scan", 0, 1);
        let scans = read_scans(&files, &Limits::default())?;
        drop(files);
        let (mut labels, images): (Vec<_>, Vec<_>) = scans
            .into_iter()
            .partition(|(name, _)| sounds_like_labels(name));
        if labels.len() > 1 {
            let names: Vec<&str> = labels.iter().map(|(name, _)| name.as_str()).collect();
            return Err(format!(
                "Several files are named like label maps ({}); give one.",
                names.join(", ")
            ));
        }
        let session = self.session.as_ref().expect("just ensured");
        let channels = self.channel_names();
        let new = new_scan(
            images,
            labels.pop(),
            &channels,
            session.volume().channels,
            &scan.mapping,
        )?;
        let config = &self.settings.config;
        let options = PrepareOptions {
            crop: config.crop,
            resample: config.resample,
            max_voxels: working_voxel_budget(self.device.as_ref().map(|d| &d.adapter)),
            margin: 8,
        };
        let (evaluation, preparation) = session
            .apply_to(&new, &options)
            .await
            .map_err(|error| error.to_string())?;
        self.progress("applying the net to the scan", 1, 1);
        let name = new.names[0].clone();
        let view = AppliedView {
            name: name.clone(),
            images: new.names.clone(),
            dims: new.volume.dims,
            spacing: new.image.spacing,
            classes: new.volume.classes,
            class_names: scan.class_names.clone(),
            mapping: scan.mapping.clone(),
            dice: evaluation.dice.clone(),
            mean_foreground_dice: evaluation.mean_foreground_dice,
            windows: evaluation.windows,
            millis: evaluation.millis,
            preparation: preparation.summary(),
        };
        let truth = if new.labelled {
            new.volume.labels.clone()
        } else {
            Vec::new()
        };
        let buffers = vec![
            f32_bytes(new.volume.channel(0)),
            evaluation.labels.clone(),
            truth,
        ];
        self.applied = Some(AppliedCase {
            name,
            image: new.image,
            mapping: scan.mapping.clone(),
            labels: evaluation.labels,
        });
        Ok((view, buffers))
    }

    /// The last applied scan's prediction, in its geometry and the file's label values.
    pub(super) fn export_applied(&mut self) {
        let Some(applied) = &self.applied else {
            return self.export_failed("Apply the net to a scan first (“Apply to a scan”).");
        };
        let values = applied.mapping.file_values(&applied.labels);
        match write_label_map(&values, &applied.image) {
            Ok(bytes) => {
                let name = format!(
                    "{}_prediction.nii.gz",
                    super::exports::scan_stem(&applied.name)
                );
                self.export(&name, "application/gzip", bytes);
            }
            Err(message) => self.export_failed(&message),
        }
    }
}
