//! The scan an engine trains on: loaded, then cropped, resampled and normalised as the settings
//! say, checked against the memory there is, and predictions put back in its own grid.

use std::sync::Arc;

use super::Engine;
use crate::backend::working_voxel_budget;
use crate::engine::protocol::{Event, ScanView};
use crate::report::{Evaluation, hard_dice, mean_foreground};
use crate::sample::normalise_nonzero;
use crate::train::TrainError;
use crate::train::memory::{check_memory, memory_limit};
use crate::volume::preprocess::{Preparation, PrepareOptions, prepare};
use crate::volume::{LabelledVolume, LoadedScan, NamedFile};

/// The scan as the net sees it: cropped, resampled and normalised, for the settings in `key`.
pub(super) struct Prepared {
    /// `(crop, resample, voxel budget)` it was made with.
    key: (bool, bool, usize),
    volume: Arc<LabelledVolume>,
    preparation: Preparation,
}

impl Engine {
    pub(super) fn loaded(&mut self, result: Result<LoadedScan, String>) {
        match result {
            Ok(scan) => self.use_scan(scan),
            Err(message) => self.emit(Event::LoadFailed { message }),
        }
    }

    /// Trains on `scan` from now on (what the load commands end in; the CLI reads files from
    /// disk itself, `.hdr` beside `.img`, and hands the scan over here).
    pub fn use_scan(&mut self, scan: LoadedScan) {
        self.drop_session();
        let envelope = ScanView::envelope(&scan);
        self.scan = Some(Arc::new(scan));
        self.prepared = None;
        (self.sink)(envelope);
        self.prepare_scan();
    }

    /// Crops and resamples the scan as the settings say (when they changed), and tells how.
    pub(super) fn prepare_scan(&mut self) {
        let Some(scan) = self.scan.clone() else {
            return;
        };
        let config = &self.settings.config;
        // The budget of the device trained on last (before the first session: the CPU's).
        let budget = working_voxel_budget(self.device.as_ref().map(|d| &d.adapter));
        let key = (config.crop, config.resample, budget);
        if self.prepared.as_ref().is_some_and(|p| p.key == key) {
            return;
        }
        self.prepared = None; // the old copy goes before the new one is made
        let options = PrepareOptions {
            crop: config.crop,
            resample: config.resample,
            max_voxels: budget,
            margin: 8,
        };
        let (mut volume, preparation) = prepare(&scan.volume, scan.image.spacing, &options);
        normalise_nonzero(&mut volume.image);
        self.emit(Event::Prepared(preparation.clone()));
        self.prepared = Some(Prepared {
            key,
            volume: Arc::new(volume),
            preparation,
        });
    }

    /// The prepared scan, once the memory a session on it needs is known to be there.
    pub(super) fn fitting_volume(&mut self) -> Result<Arc<LabelledVolume>, TrainError> {
        let volume = self.working_volume()?;
        let scan_voxels = self
            .scan
            .as_ref()
            .map_or(0, |scan| scan.volume.voxel_count());
        check_memory(
            &self.settings.config,
            volume.classes,
            scan_voxels,
            volume.voxel_count(),
            memory_limit(),
        )
        .map_err(TrainError::Config)?;
        Ok(volume)
    }

    /// The prepared scan; a failure when there is no scan.
    pub(super) fn working_volume(&mut self) -> Result<Arc<LabelledVolume>, TrainError> {
        self.prepare_scan();
        self.prepared
            .as_ref()
            .map(|p| p.volume.clone())
            .ok_or_else(|| TrainError::Config("Load a scan first (or press “Demo scan”).".into()))
    }

    /// A prediction on the working grid, its classes put back in the scan's grid (un-resampled,
    /// un-cropped) and scored there against the scan's own labels. The probabilities stay on the
    /// working grid (a full-size scan's planes in its own grid would take ~150 MB per copy);
    /// the page samples them per drawn pixel ([`Preparation::probability_at`]).
    pub(super) fn in_scan_grid(&self, mut evaluation: Evaluation) -> Evaluation {
        let (Some(scan), Some(prepared)) = (&self.scan, &self.prepared) else {
            return evaluation;
        };
        let preparation = &prepared.preparation;
        if !preparation.cropped() && !preparation.resampled() {
            return evaluation;
        }
        let classes = scan.volume.classes;
        evaluation.labels = preparation.labels_to_original(&evaluation.labels);
        evaluation.dice = hard_dice(&evaluation.labels, &scan.volume.labels, classes);
        evaluation.mean_foreground_dice = mean_foreground(&evaluation.dice);
        evaluation
    }
}

pub(super) fn named_files(names: Vec<String>, buffers: Vec<Vec<u8>>) -> Vec<NamedFile> {
    names
        .into_iter()
        .zip(buffers)
        .map(|(name, bytes)| NamedFile { name, bytes })
        .collect()
}
