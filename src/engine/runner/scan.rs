//! The cases an engine trains on (one scan, or a set with held-out cases): loaded, then
//! cropped, resampled and normalised as the settings say, checked against the memory there is,
//! predictions put back in each case's own grid, and the held-out cases scored.

use std::sync::Arc;

use super::{Engine, ScanIdentity};
use crate::backend::working_voxel_budget;
use crate::engine::protocol::{Envelope, Event, ScanView, f32_bytes};
use crate::report::{Evaluation, ValidationReport, hard_dice, mean_foreground};
use crate::sample::normalise_channels;
use crate::train::TrainError;
use crate::train::memory::{CaseSize, check_cases_memory, memory_limit};
use crate::volume::preprocess::{Preparation, PrepareOptions, prepare};
use crate::volume::{Dataset, LabelledVolume, LoadedScan, NamedFile};

/// The scan as the net sees it: cropped, resampled and normalised, for the settings in `key`;
/// and the set's other cases, prepared the same way.
pub(super) struct Prepared {
    /// `(crop, resample, voxel budget)` it was made with.
    key: (bool, bool, usize),
    volume: Arc<LabelledVolume>,
    preparation: Preparation,
    /// The set's other cases, in [`Engine`]'s `others` order.
    others: Vec<(Arc<LabelledVolume>, Preparation)>,
}

/// What a preparation depends on: `(crop, resample, voxel budget)`.
pub(super) type PreparedKey = (bool, bool, usize);

/// The set's cases prepared while they were read (each read once), for the settings in `key`;
/// the first case's first channel, for the page.
pub(super) struct EarlyPrepared {
    pub(super) key: PreparedKey,
    pub(super) cases: Vec<EarlyCase>,
    pub(super) first_channel: Option<(String, Vec<f32>)>,
}

/// A case prepared as it was read: in the classes of its own label map, before the set agreed
/// on one mapping (`values`: the label value of each of those classes).
pub(super) struct EarlyCase {
    pub(super) name: String,
    pub(super) values: Vec<i64>,
    pub(super) volume: LabelledVolume,
    pub(super) preparation: Preparation,
}

impl EarlyCase {
    /// The copy in the classes `scan` has now (the set's mapping); `None` if a value of its
    /// own is not among them.
    fn in_classes_of(mut self, scan: &LoadedScan) -> Option<(LabelledVolume, Preparation)> {
        let renumber: Vec<u8> = self
            .values
            .iter()
            .map(|value| {
                let class = scan.mapping.values.iter().position(|v| v == value)?;
                u8::try_from(class).ok()
            })
            .collect::<Option<_>>()?;
        for label in &mut self.volume.labels {
            *label = *renumber.get(*label as usize)?;
        }
        self.volume.classes = scan.volume.classes;
        Some((self.volume, self.preparation))
    }
}

/// A case of the set besides the scan (the first training case, which the page shows).
pub(super) struct OtherCase {
    pub(super) name: String,
    pub(super) scan: Arc<LoadedScan>,
    /// Scored while training, never sampled.
    pub(super) held_out: bool,
}

impl Engine {
    pub(super) fn loaded(&mut self, result: Result<Dataset, String>, identity: ScanIdentity) {
        match result {
            Ok(dataset) => {
                self.use_dataset(dataset);
                self.scan_identity = identity;
            }
            Err(message) => self.emit(Event::LoadFailed { message }),
        }
    }

    /// Which scan this is, for a saved run to know it again (the CLI reads its files itself).
    pub fn set_scan_identity(&mut self, identity: ScanIdentity) {
        self.scan_identity = identity;
    }

    /// Trains on `scan` from now on (what the load commands end in; the CLI reads files from
    /// disk itself, `.hdr` beside `.img`, and hands the scan over here).
    pub fn use_scan(&mut self, scan: LoadedScan) {
        self.use_dataset(Dataset::single(scan));
    }

    /// Trains on the set's training cases from now on, scoring its held-out cases as it goes.
    /// The first training case is the scan the page shows and predicts.
    pub fn use_dataset(&mut self, dataset: Dataset) {
        let cases = dataset
            .into_parts()
            .into_iter()
            .map(|(case, held_out)| (case.name, Arc::new(case.scan), held_out))
            .collect();
        self.install_cases(cases);
    }

    /// Holds out exactly the set's cases named (the page's checkboxes; the rest train), from a
    /// fresh run. A name that is no case, or holding out every case, gets a sentence and changes
    /// nothing.
    pub fn hold_out(&mut self, names: &[String]) {
        let Some(scan) = self.scan.clone() else {
            return;
        };
        let known: Vec<&str> = std::iter::once(self.scan_case.as_str())
            .chain(self.others.iter().map(|other| other.name.as_str()))
            .collect();
        let refusal = if let Some(unknown) = names.iter().find(|n| !known.contains(&n.as_str())) {
            Some(format!("There is no case {unknown} to hold out."))
        } else if known.iter().all(|name| names.iter().any(|n| n == name)) {
            Some("Every case would be held out; leave at least one to train on.".to_string())
        } else {
            None
        };
        if let Some(message) = refusal {
            self.fail(TrainError::Config(message));
            return;
        }
        let mut cases: Vec<(String, Arc<LoadedScan>, bool)> =
            vec![(self.scan_case.clone(), scan, false)];
        cases.extend(
            std::mem::take(&mut self.others)
                .into_iter()
                .map(|other| (other.name, other.scan, false)),
        );
        for (name, _, held_out) in &mut cases {
            *held_out = names.contains(name);
        }
        cases.sort_by(|a, b| a.0.cmp(&b.0));
        self.install_cases(cases);
    }

    /// The set's cases, in name order, from now on: the first training case is the scan the
    /// page shows and predicts; the others train or are held out.
    fn install_cases(&mut self, cases: Vec<(String, Arc<LoadedScan>, bool)>) {
        self.drop_session();
        let several = cases.len() > 1;
        let (names, held_out): (Vec<String>, Vec<bool>) = cases
            .iter()
            .map(|(name, _, held_out)| (name.clone(), *held_out))
            .unzip();
        let mut first = None;
        let mut others = Vec::new();
        for (name, scan, held_out) in cases {
            if first.is_none() && !held_out {
                first = Some((name, scan));
            } else {
                others.push(OtherCase {
                    name,
                    scan,
                    held_out,
                });
            }
        }
        let Some((name, first)) = first else {
            // A Dataset always keeps a case to train on; say so rather than panic if not.
            self.emit(Event::LoadFailed {
                message: "Every case is held out; leave at least one to train on.".into(),
            });
            return;
        };
        let kept = self
            .early
            .as_mut()
            .and_then(|early| early.first_channel.take())
            .filter(|(case, _)| *case == name)
            .map(|(_, plane)| plane);
        let plane = match kept {
            Some(plane) => Ok(std::borrow::Cow::Owned(plane)),
            None => first.channel_intensities(0),
        };
        let envelope = match plane {
            Ok(plane) => ScanView::envelope(&first, &plane),
            Err(message) => {
                self.emit(Event::LoadFailed { message });
                return;
            }
        };
        self.scan = Some(first);
        self.scan_case = name;
        self.others = others;
        self.validation.clear();
        self.prepared = None;
        (self.sink)(envelope);
        if several {
            self.emit(Event::Cases { names, held_out });
        }
        if let Err(message) = self.prepare_scan() {
            self.emit(Event::LoadFailed { message });
        }
    }

    /// The scan's channel `index` for the page's slice views (read again from its files when
    /// the scan let go of its intensities).
    pub(super) fn send_channel(&mut self, index: usize) {
        let Some(scan) = &self.scan else {
            return;
        };
        match scan.channel_intensities(index) {
            Ok(plane) => {
                let envelope =
                    Envelope::with(Event::ScanChannel { index }, vec![f32_bytes(&plane)]);
                (self.sink)(envelope);
            }
            Err(message) => self.emit(Event::LoadFailed { message }),
        }
    }

    /// Crops and resamples the scan and the set's other cases as the settings say (when they
    /// changed), and tells how. A case whose intensities were let go is read again from its
    /// files, one case at a time, and lets them go again once prepared: between preparations
    /// the engine holds the prepared copies, the labels and the files, not every modality of
    /// every case at full size.
    /// How the settings and the device say a scan is prepared, and the key of that.
    pub(super) fn preparation_options(&self) -> (PreparedKey, PrepareOptions) {
        let config = &self.settings.config;
        // The budget of the device trained on last (before the first session: the CPU's).
        let budget = working_voxel_budget(self.device.as_ref().map(|d| &d.adapter));
        let options = PrepareOptions {
            crop: config.crop,
            resample: config.resample,
            max_voxels: budget,
            margin: 8,
        };
        ((config.crop, config.resample, budget), options)
    }

    pub(super) fn prepare_scan(&mut self) -> Result<(), String> {
        let (key, options) = self.preparation_options();
        if self.prepared.as_ref().is_some_and(|p| p.key == key) {
            return Ok(());
        }
        self.prepared = None; // the old copies go before the new ones are made
        // The copies made while the set was read, if made as these settings say.
        let mut early = match self.early.take() {
            Some(early) if early.key == key => early.cases,
            _ => Vec::new(),
        };
        // Each case lets go of its intensities once prepared, before the next is read (a
        // scan someone else holds keeps them).
        let mut prepare_one = |name: &str, scan: &mut Arc<LoadedScan>| {
            let made = early
                .iter()
                .position(|e| e.name == name)
                .map(|at| early.swap_remove(at))
                .and_then(|made| made.in_classes_of(scan));
            let (mut volume, preparation) = match made {
                Some(made) => made,
                None => {
                    let full = scan.full_volume()?;
                    prepare(&full, scan.image.spacing, &options)
                }
            };
            normalise_channels(&mut volume);
            if let Some(scan) = Arc::get_mut(scan) {
                scan.release_image();
            }
            Ok::<_, String>((Arc::new(volume), preparation))
        };
        let scan_case = self.scan_case.clone();
        let (volume, preparation) = match self.scan.as_mut() {
            Some(scan) => prepare_one(&scan_case, scan)?,
            None => return Ok(()),
        };
        let others = self
            .others
            .iter_mut()
            .map(|other| prepare_one(&other.name, &mut other.scan))
            .collect::<Result<Vec<_>, _>>()?;
        self.emit(Event::Prepared(preparation.clone()));
        self.prepared = Some(Prepared {
            key,
            volume,
            preparation,
            others,
        });
        Ok(())
    }

    /// The prepared training cases (the scan first), once the memory a session on the whole
    /// set needs is known to be there.
    pub(super) fn fitting_cases(&mut self) -> Result<Vec<Arc<LabelledVolume>>, TrainError> {
        let volume = self.working_volume()?;
        let prepared = self.prepared.as_ref().expect("made by working_volume");
        let scan = self.scan.as_ref().expect("prepared from it");
        let mut sizes = vec![CaseSize {
            scan_voxels: scan.volume.voxel_count(),
            working_voxels: volume.voxel_count(),
            channels: volume.channels,
        }];
        let mut training = vec![volume.clone()];
        for (other, (working, _)) in self.others.iter().zip(&prepared.others) {
            sizes.push(CaseSize {
                scan_voxels: other.scan.volume.voxel_count(),
                working_voxels: working.voxel_count(),
                channels: working.channels,
            });
            if !other.held_out {
                training.push(working.clone());
            }
        }
        check_cases_memory(
            &self.settings.config,
            volume.classes,
            &sizes,
            memory_limit(),
        )
        .map_err(TrainError::Config)?;
        Ok(training)
    }

    /// The prepared scan; a failure when there is no scan.
    pub(super) fn working_volume(&mut self) -> Result<Arc<LabelledVolume>, TrainError> {
        self.prepare_scan().map_err(TrainError::Config)?;
        self.prepared
            .as_ref()
            .map(|p| p.volume.clone())
            .ok_or_else(|| TrainError::Config("Load a scan first (or press “Demo scan”).".into()))
    }

    /// True when the set holds cases out.
    pub(super) fn has_validation(&self) -> bool {
        self.others.iter().any(|other| other.held_out)
    }

    /// The held-out cases (`held_out`) or the training cases, each predicted whole by the
    /// session's net and scored in its own grid; `None` without a session or such cases.
    pub async fn score_cases(
        &self,
        held_out: bool,
    ) -> Result<Option<ValidationReport>, TrainError> {
        let (Some(session), Some(prepared), Some(scan)) =
            (&self.session, &self.prepared, &self.scan)
        else {
            return Ok(None);
        };
        let first = (!held_out).then_some((
            self.scan_case.as_str(),
            scan,
            &prepared.volume,
            &prepared.preparation,
        ));
        let others = self
            .others
            .iter()
            .zip(&prepared.others)
            .filter(|(other, _)| other.held_out == held_out)
            .map(|(other, (working, preparation))| {
                (other.name.as_str(), &other.scan, working, preparation)
            });
        let mut cases = Vec::new();
        for (name, scan, working, preparation) in first.into_iter().chain(others) {
            let evaluation = session.evaluate_normalised(working).await?;
            let labels = preparation.labels_to_original(&evaluation.labels);
            let dice = match session.region_map() {
                Some(map) => map.region_dice(&labels, &scan.volume.labels).to_vec(),
                None => hard_dice(&labels, &scan.volume.labels, scan.volume.classes),
            };
            cases.push((name.to_string(), dice));
        }
        let step = session.steps_done();
        Ok((!cases.is_empty()).then(|| match session.region_map() {
            Some(_) => ValidationReport::of_regions(step, cases),
            None => ValidationReport::of(step, cases),
        }))
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
        if let Some(map) = self.session.as_ref().and_then(|s| s.region_map()) {
            evaluation.region_dice = map
                .region_dice(&evaluation.labels, &scan.volume.labels)
                .to_vec();
            evaluation.mean_foreground_dice =
                evaluation.region_dice.iter().sum::<f32>() / evaluation.region_dice.len() as f32;
        }
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
