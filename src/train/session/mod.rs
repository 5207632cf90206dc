//! A training session, readable top to bottom: sample patches, forward, mixed loss, backward,
//! global clipping, Adam, and one readback of every number the page shows (decoded in
//! `readout.rs`). Its settings are [`TrainingConfig`] (`../config.rs`); whole-volume prediction
//! with the session's net is `predict.rs`.

use std::sync::Arc;

use burn::optim::GradientsParams;
use burn::prelude::*;
use web_time::Instant;

use crate::backend::ComputeDevice;
use crate::loss::gdl_pipeline;
use crate::loss::{Misuse, MixedLossConfig, WarmupLoss};
use crate::model::{ModelKind, SegmentationNet, widen_simple_to_target};
use crate::report::{GdlAnatomy, StepReport};
use crate::sample::regions_on_device;
use crate::sample::{Batch, PatchSampler, normalise_channels};
use crate::train::TrainError;
use crate::train::adam::Adam;
use crate::train::buffers::check_largest_buffer;
use crate::train::clip::clip_global_norm;
use crate::train::config::TrainingConfig;
use crate::volume::{LabelledVolume, RegionMap, Targets};

mod apply;
mod predict;
mod readout;
pub mod shard;

use readout::{gdl_readout, read_back_all};
use shard::{BatchHelpers, add_shares, merge_readouts, share_readout, shares};

pub struct TrainingSession {
    config: TrainingConfig,
    loss: MixedLossConfig,
    /// The training cases, normalised; shared with whoever prepared them (the engine), not
    /// copied. The first is the one [`Self::evaluate`] predicts. Validation cases are never
    /// here: the sampler draws from these alone.
    cases: Vec<Arc<LabelledVolume>>,
    net: SegmentationNet,
    optimizer: Adam,
    sampler: PatchSampler,
    /// The device as given, for inference, and with autodiff, for training.
    device: Device,
    train_device: Device,
    steps_done: usize,
    /// The latest step's batch (without autodiff), for the lab's probes.
    last_batch: Option<Batch>,
    /// With region targets: which class is which tumour tissue (BraTS's class order unless
    /// [`Self::use_region_map`] said otherwise).
    regions: Option<RegionMap>,
    /// Why a helper failed to compute its share of a step ([`Self::step_with`]).
    helper_failure: Option<String>,
}

/// Everything a step changes, taken before it so that a step that fails leaves no trace: the
/// net, Adam's moments and the sampler's position. (Cheap: tensors are shared, not copied.)
struct Snapshot {
    net: SegmentationNet,
    optimizer: Adam,
    sampler_position: usize,
    last_batch: Option<Batch>,
    steps_done: usize,
}

impl TrainingSession {
    /// [`TrainingSession::new`] on `compute`, after checking that the session's largest buffer
    /// fits the device ([`check_largest_buffer`]): what the page and the CLI call.
    pub fn on(
        config: TrainingConfig,
        volume: &LabelledVolume,
        compute: &ComputeDevice,
    ) -> Result<Self, TrainError> {
        Self::on_normalised(config, normalised(volume), compute)
    }

    /// [`Self::on`] for a volume already normalised ([`normalise_channels`]), kept shared.
    pub fn on_normalised(
        config: TrainingConfig,
        volume: Arc<LabelledVolume>,
        compute: &ComputeDevice,
    ) -> Result<Self, TrainError> {
        Self::on_cases(config, vec![volume], compute)
    }

    /// [`Self::on_normalised`] for several training cases (the same channels and classes), whose
    /// patches a batch mixes.
    pub fn on_cases(
        config: TrainingConfig,
        cases: Vec<Arc<LabelledVolume>>,
        compute: &ComputeDevice,
    ) -> Result<Self, TrainError> {
        let classes = cases.first().map_or(0, |case| case.classes);
        check_largest_buffer(&config, classes, compute.adapter.max_buffer_size)
            .map_err(TrainError::Config)?;
        Self::with_cases(config, cases, &compute.device)
    }

    /// Normalises a copy of `volume` and builds a freshly initialised net on `device`.
    pub fn new(
        config: TrainingConfig,
        volume: &LabelledVolume,
        device: &Device,
    ) -> Result<Self, TrainError> {
        Self::with_cases(config, vec![normalised(volume)], device)
    }

    fn with_cases(
        config: TrainingConfig,
        cases: Vec<Arc<LabelledVolume>>,
        device: &Device,
    ) -> Result<Self, TrainError> {
        config.validate().map_err(TrainError::Config)?;
        let Some(volume) = cases.first().cloned() else {
            return Err(TrainError::Config(
                "There is no case to train on: every case is held out for validation.".into(),
            ));
        };
        if let Some(other) = cases
            .iter()
            .find(|case| case.classes != volume.classes || case.channels != volume.channels)
        {
            return Err(TrainError::Config(format!(
                "The training cases differ: one has {} channels and {} classes, another {} and {}.",
                volume.channels, volume.classes, other.channels, other.classes
            )));
        }
        if volume.classes < 2 {
            return Err(TrainError::Config(
                "The label map needs at least two classes (background and one more).".into(),
            ));
        }
        let regions = match config.targets {
            Targets::Classes => None,
            Targets::Regions if volume.classes == 4 => Some(RegionMap::brats()),
            Targets::Regions => {
                return Err(TrainError::Config(format!(
                    "Region targets need BraTS's four classes (background, necrotic core, \
                     oedema, enhancing tumour); this label map has {}.",
                    volume.classes
                )));
            }
        };
        let train_device = device.clone().autodiff();
        let first_model = if config.pretrain_epochs > 0 {
            ModelKind::Simple
        } else {
            config.model
        };
        let outputs = config.targets.output_channels(volume.classes);
        let net = fresh_net(
            first_model,
            volume.channels,
            outputs,
            &train_device,
            Some(config.seed),
        );
        Ok(Self {
            loss: config.loss(),
            net,
            optimizer: Adam::default(),
            sampler: PatchSampler::over(
                &cases.iter().map(|case| case.as_ref()).collect::<Vec<_>>(),
                config.patch,
                1.0 / 3.0,
                config.seed,
            ),
            cases,
            config,
            device: device.clone(),
            train_device,
            steps_done: 0,
            last_batch: None,
            regions,
            helper_failure: None,
        })
    }

    /// Which class is which tissue, for region targets (from the classes' names: BraTS's order
    /// or the Decathlon's); a sentence when this session trains classes or the map has other
    /// classes.
    pub fn use_region_map(&mut self, map: RegionMap) -> Result<(), TrainError> {
        if self.regions.is_none() {
            return Err(TrainError::Config(
                "This run trains classes, not regions (targets=classes).".into(),
            ));
        }
        if map.classes() != self.volume().classes {
            return Err(TrainError::Config(format!(
                "The region map is for {} classes; the scan has {}.",
                map.classes(),
                self.volume().classes
            )));
        }
        self.regions = Some(map);
        self.last_batch = None;
        Ok(())
    }

    /// The region map when this session trains regions.
    pub fn region_map(&self) -> Option<&RegionMap> {
        self.regions.as_ref()
    }

    /// The net's output channels: the classes, or the three regions.
    pub fn output_channels(&self) -> usize {
        self.config.targets.output_channels(self.volume().classes)
    }

    /// `batch` patches with their targets: one-hot classes, or the regions of those.
    fn draw(&mut self, device: &Device) -> Batch {
        let cases: Vec<&LabelledVolume> = self.cases.iter().map(|case| case.as_ref()).collect();
        let batch = self.sampler.sample(&cases, self.config.batch, device);
        match &self.regions {
            Some(map) => Batch {
                target: regions_on_device(batch.target, map),
                image: batch.image,
            },
            None => batch,
        }
    }

    pub fn steps_done(&self) -> usize {
        self.steps_done
    }

    pub fn config(&self) -> &TrainingConfig {
        &self.config
    }

    /// The net being trained now.
    pub fn net(&self) -> &SegmentationNet {
        &self.net
    }

    /// Continues from `net`'s weights (the same kind of net, on any device or backend) instead
    /// of this session's own initialisation, e.g. so that two backends train from one start.
    pub async fn adopt_weights(&mut self, net: &SegmentationNet) -> Result<(), TrainError> {
        let own = self.net.clone();
        self.net = crate::model::weights::copy_parameters(net, own)
            .await
            .map_err(TrainError::Config)?;
        Ok(())
    }

    /// This session on another device (e.g. the CPU after the GPU failed): the same weights,
    /// Adam's moments, steps and sampler position, read back from the old device.
    pub async fn move_to(&self, compute: &ComputeDevice) -> Result<Self, TrainError> {
        let mut moved = Self::on_cases(self.config.clone(), self.cases.clone(), compute)?;
        moved.regions = self.regions.clone();
        let volume = self.volume();
        let outputs = self.output_channels();
        let net = fresh_net(
            self.net.kind(),
            volume.channels,
            outputs,
            &moved.train_device,
            None,
        );
        moved.net = crate::model::weights::copy_parameters(&self.net, net)
            .await
            .map_err(TrainError::Device)?;
        let moments = self.adam_moments().await?;
        moved.optimizer = Adam::from_safetensors(&moments, &moved.net, &moved.device)
            .map_err(TrainError::Device)?;
        moved.sampler.seek(self.sampler.position());
        moved.steps_done = self.steps_done;
        Ok(moved)
    }

    /// Adam's moments as a `.safetensors` file ([`Adam::to_safetensors`]), for a checkpoint.
    pub async fn adam_moments(&self) -> Result<Vec<u8>, TrainError> {
        self.optimizer
            .to_safetensors(&self.net)
            .await
            .map_err(TrainError::Device)
    }

    /// Continues from a checkpoint (the weights as [`crate::model::weights::to_safetensors`]
    /// wrote them, of a `model` net, and Adam's moments as [`Self::adam_moments`] wrote them,
    /// after `steps_done` steps with the sampler at `sampler_position`), e.g. in a new worker
    /// after the old one crashed. Without moments Adam starts afresh.
    pub fn restore_checkpoint(
        &mut self,
        weights: &[u8],
        moments: Option<&[u8]>,
        model: ModelKind,
        steps_done: usize,
        sampler_position: usize,
    ) -> Result<(), TrainError> {
        let volume = self.volume();
        let outputs = self.output_channels();
        let net = fresh_net(model, volume.channels, outputs, &self.train_device, None);
        let net =
            crate::model::weights::from_safetensors(weights, net).map_err(TrainError::Config)?;
        self.optimizer = match moments {
            Some(bytes) => {
                Adam::from_safetensors(bytes, &net, &self.device).map_err(TrainError::Config)?
            }
            None => Adam::default(),
        };
        self.net = net;
        self.steps_done = steps_done;
        self.sampler.seek(sampler_position);
        self.last_batch = None;
        Ok(())
    }

    /// Patches drawn so far (a checkpoint's sampler position).
    pub fn sampler_position(&self) -> usize {
        self.sampler.position()
    }

    /// True once `epochs × steps_per_epoch` steps are done.
    pub fn finished(&self) -> bool {
        self.steps_done >= self.config.total_steps()
    }

    /// Adam's learning rate from the next step on; the moments are kept. (The one setting a
    /// person changes mid-run, e.g. after a NaN stop, without starting again.)
    pub fn set_learning_rate(&mut self, lr: f64) -> Result<(), TrainError> {
        self.change_mid_run(|config| config.lr = lr)
    }

    /// The whole-volume prediction's window overlap (0, 25 or 50 %) from now on.
    pub fn set_overlap(&mut self, overlap: u8) -> Result<(), TrainError> {
        self.change_mid_run(|config| config.overlap = overlap)
    }

    /// A setting the run keeps going with, checked before it is taken.
    fn change_mid_run(
        &mut self,
        change: impl FnOnce(&mut TrainingConfig),
    ) -> Result<(), TrainError> {
        let mut config = self.config.clone();
        change(&mut config);
        config.validate().map_err(TrainError::Config)?;
        self.config = config;
        Ok(())
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            net: self.net.clone(),
            optimizer: self.optimizer.clone(),
            sampler_position: self.sampler.position(),
            steps_done: self.steps_done,
            last_batch: self.last_batch.clone(),
        }
    }

    fn restore(&mut self, snapshot: Snapshot) {
        self.net = snapshot.net;
        self.optimizer = snapshot.optimizer;
        self.sampler.seek(snapshot.sampler_position);
        self.steps_done = snapshot.steps_done;
        self.last_batch = snapshot.last_batch;
    }

    /// One optimisation step. Everything the report holds is read back in one asynchronous
    /// transfer at the end, so the browser never blocks on the GPU. When a loss component, the
    /// gradient or the updated weights are not finite, the session is put back exactly as it
    /// was before the step (net, Adam's moments, sampler) and the error names the component.
    pub async fn step(&mut self) -> Result<StepReport, TrainError> {
        self.step_with(None).await
    }

    /// [`Self::step`] with the batch split between this session and `helpers` (other workers,
    /// [`shard`]) where the loss allows it: the same step, up to the order of the sums. A helper
    /// that fails costs nothing: its share is computed here, and
    /// [`Self::take_helper_failure`] says why.
    pub async fn step_with(
        &mut self,
        helpers: Option<&dyn BatchHelpers>,
    ) -> Result<StepReport, TrainError> {
        let before = self.snapshot();
        let result = self.try_step(helpers).await;
        if matches!(result, Err(TrainError::NonFinite { .. })) {
            self.restore(before);
        }
        result
    }

    /// How many workers a step would split its batch among, given `helpers` other workers.
    pub fn workers_for(&self, helpers: usize) -> usize {
        shares(&self.config, helpers).len()
    }

    /// Why a helper failed during the last steps (its share was computed here instead), once.
    pub fn take_helper_failure(&mut self) -> Option<String> {
        self.helper_failure.take()
    }

    async fn try_step(
        &mut self,
        helpers: Option<&dyn BatchHelpers>,
    ) -> Result<StepReport, TrainError> {
        let started = Instant::now();
        self.widen_when_pretraining_ends();
        let epochs_done = self.steps_done as f64 / self.config.steps_per_epoch as f64;

        let train_device = self.train_device.clone();
        let batch = self.draw(&train_device);
        self.last_batch = Some(Batch {
            image: batch.image.clone().without_autodiff(),
            target: batch.target.clone().without_autodiff(),
        });
        // The other workers' shares go out first, so that they compute while this one does.
        let shares = shares(&self.config, helpers.map_or(0, |helpers| helpers.count()));
        let own = shares[0];
        let pending = match helpers {
            Some(helpers) if shares.len() > 1 => {
                let requests = self.share_requests(&batch, &shares, epochs_done).await?;
                Some((helpers.compute(requests.clone()), requests))
            }
            _ => None,
        };
        let logits = self.net.forward(batch.image.narrow(0, 0, own));
        let loss = self
            .loss
            .forward(logits, batch.target.narrow(0, 0, own), epochs_done);
        let mut gradients = GradientsParams::from_grads(loss.total.backward(), &self.net);
        let others = match pending {
            Some((answers, requests)) => self.answers(answers.await, requests).await?,
            None => Vec::new(),
        };
        let fraction = |patches: usize| patches as f32 / self.config.batch as f32;
        if !others.is_empty() {
            let weighted: Vec<(f32, &[f32])> = shares[1..]
                .iter()
                .zip(&others)
                .map(|(&patches, other)| (fraction(patches), other.gradients.as_slice()))
                .collect();
            add_shares(&self.net, &mut gradients, fraction(own), &weighted)
                .map_err(TrainError::Device)?;
        }
        let max_norm = (self.config.clip > 0.0).then_some(self.config.clip);
        let norms = clip_global_norm(&self.net, &mut gradients, max_norm)
            .expect("every net has parameters");
        let (net, updated_norm) = self
            .optimizer
            .step(self.config.lr, self.net.clone(), gradients);
        self.net = net;
        let updated_norm = updated_norm.expect("every net has parameters with gradients");

        // One readback: [norms, then this share's losses, the GDL's statistics and anatomy].
        let mut scalars = vec![norms.before, norms.after, updated_norm];
        scalars.extend(share_readout(&loss.total, &loss.warmup, &loss.gdl));
        let values =
            read_back_all(scalars.into_iter().map(|t| t.without_autodiff()).collect()).await?;
        self.steps_done += 1;
        let ([grad_norm, grad_norm_clipped, weight_norm], own_readout) =
            ([values[0], values[1], values[2]], &values[3..]);
        let readout = if others.is_empty() {
            own_readout.to_vec()
        } else {
            let classes = loss.gdl.parts.weight.dims()[1];
            let mut weighted = vec![(fraction(own), own_readout)];
            weighted.extend(
                shares[1..]
                    .iter()
                    .zip(&others)
                    .map(|(&patches, other)| (fraction(patches), other.readout.as_slice())),
            );
            merge_readouts(&weighted, classes)
        };
        let [total, warmup] = [readout[0], readout[1]];
        let anatomy =
            GdlAnatomy::from_readout(&readout[2..], &loss.gdl, self.loss.gdl.include_background);
        let monitor = anatomy.monitor;
        let warmup_name = match self.config.warmup {
            WarmupLoss::Bce => "BCE term",
            WarmupLoss::Ce => "CE term",
        };
        let checks = [
            (warmup_name, warmup),
            ("GDL term", monitor.gdl),
            ("gradient norm", grad_norm),
            ("total loss", total),
            ("norm of the updated weights", weight_norm),
        ];
        if let Some((component, value)) = checks.into_iter().find(|(_, v)| !v.is_finite()) {
            return Err(TrainError::NonFinite {
                step: self.steps_done,
                component,
                value,
            });
        }

        Ok(StepReport {
            step: self.steps_done,
            epoch: epochs_done as usize,
            model: self.net.kind(),
            lambda: loss.lambda,
            total,
            warmup_loss: self.config.warmup,
            warmup,
            gdl: anatomy.value,
            anatomy,
            grad_norm,
            grad_norm_clipped,
            millis: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    /// The lab: the GDL of the current net on the latest batch (a fresh one before the first
    /// step), as the correct pipeline computes it (`misuse = None`) or with one cause of trouble
    /// injected. Changes nothing in the session but the sampler's position before step 1.
    pub async fn probe_gdl(&mut self, misuse: Option<Misuse>) -> Result<GdlAnatomy, TrainError> {
        let batch = match &self.last_batch {
            Some(batch) => batch.clone(),
            None => {
                let device = self.device.clone();
                let batch = self.draw(&device);
                self.last_batch = Some(batch.clone());
                batch
            }
        };
        let logits = self.net.valid().forward(batch.image);
        let run = gdl_pipeline(logits, batch.target, &self.loss.gdl, misuse);
        let values = read_back_all(gdl_readout(&run)).await?;
        Ok(GdlAnatomy::from_readout(
            &values,
            &run,
            self.loss.gdl.include_background,
        ))
    }

    /// The first training case, as the session trains on it (intensities normalised).
    pub fn volume(&self) -> &LabelledVolume {
        &self.cases[0]
    }

    /// Every training case, normalised, in the sampler's order.
    pub fn cases(&self) -> &[Arc<LabelledVolume>] {
        &self.cases
    }

    /// The latest step's batch (without autodiff), if a step was made.
    pub fn last_batch(&self) -> Option<&Batch> {
        self.last_batch.as_ref()
    }

    /// After `pretrain_epochs` of the Simple net, replace it by the Target net that computes the
    /// same function (Net2Net) and restart Adam for the new parameters.
    fn widen_when_pretraining_ends(&mut self) {
        let pretrain_steps = self
            .config
            .pretrain_epochs
            .saturating_mul(self.config.steps_per_epoch);
        if let SegmentationNet::Simple(simple) = &self.net
            && self.config.model == ModelKind::Target
            && self.steps_done >= pretrain_steps
        {
            self.net = SegmentationNet::Target(widen_simple_to_target(simple, 1e-3));
            self.optimizer = Adam::default();
        }
    }
}

/// burn keeps one random state for the whole process: a session seeds it and draws all of its
/// net's first weights under this lock, so that sessions made at the same time (the tests run in
/// parallel; a probe beside a run) each get the weights their own seed gives.
static SEEDED_DRAWS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A freshly initialised `kind` net for `channels` channels in (the scan's modalities) and
/// `outputs` out (its classes, or the three regions), burn's random state
/// seeded with `seed` first when given (without one the weights are about to be replaced, and
/// are drawn under the lock only so as not to disturb a seeded draw).
fn fresh_net(
    kind: ModelKind,
    channels: usize,
    outputs: usize,
    device: &Device,
    seed: Option<u64>,
) -> SegmentationNet {
    let _draws = SEEDED_DRAWS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(seed) = seed {
        device.seed(seed);
    }
    let net = kind.init_for(channels, outputs, device);
    // burn draws a parameter's initial values when it is first read, not when the net is made:
    // read every one now, under the lock, rather than at the first step beside other draws.
    net.visit(&mut DrawNow);
    net
}

/// Reads every float parameter, which makes burn draw the lazily initialised ones.
struct DrawNow;

impl burn::module::ModuleVisitor for DrawNow {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// A normalised copy of `volume`, to share.
pub(super) fn normalised(volume: &LabelledVolume) -> Arc<LabelledVolume> {
    let mut volume = volume.clone();
    normalise_channels(&mut volume);
    Arc::new(volume)
}
