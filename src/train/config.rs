//! Everything that decides a run, as one flat value: the page's URL hash (`key=value&…`), the
//! CLI's flags and the engine's settings all read and write it with the same names.

use serde::{Deserialize, Serialize};

use crate::loss::{GdlConfig, Misuse, MixedLossConfig, Schedule, WarmupLoss, WeightType};
use crate::model::ModelKind;
use crate::volume::Targets;

/// Everything that decides a run. Flat, so that it reads as `key=value&…` in the page's URL and
/// as `--key value` flags in the CLI, with the same names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    pub model: ModelKind,
    /// What the net's outputs are: the classes (softmax) or BraTS's overlapping regions WT, TC
    /// and ET (a sigmoid each; the warm-up is BCE and the GDL runs over the regions).
    pub targets: Targets,
    /// With `model = target`: first train the Simple net for this many epochs, then widen it
    /// (Net2Net) into the Target net and continue. 0 = random initialisation.
    pub pretrain_epochs: usize,
    /// The warm-up term.
    pub warmup: WarmupLoss,
    pub schedule: Schedule,
    pub warmup_epochs: f64,
    pub ramp_epochs: f64,
    pub bce_weight: f64,
    pub gdl_weight: f64,
    pub w_type: WeightType,
    pub include_background: bool,
    /// GDL sums pooled over the batch (MONAI's `batch=True`).
    pub batch_dice: bool,
    pub smooth_nr: f64,
    pub smooth_dr: f64,
    /// Train with a lab misuse injected into the GDL (to watch it go negative).
    pub misuse: Option<Misuse>,
    /// Adam's learning rate.
    pub lr: f64,
    /// Maximum global gradient norm; 0 turns clipping off.
    pub clip: f64,
    /// Edge of the cubic training patches, in voxels.
    pub patch: usize,
    /// Patches per step.
    pub batch: usize,
    pub steps_per_epoch: usize,
    pub epochs: usize,
    /// Seeds the weights and the patch sampler.
    pub seed: u64,
    /// Crop the scan to the head (its foreground box plus a margin) before training.
    pub crop: bool,
    /// Resample the cropped scan to a coarser grid when it has more voxels than the device's
    /// budget ([`crate::backend::working_voxel_budget`]).
    pub resample: bool,
    /// Overlap of the whole-volume prediction's windows, in per cent: 0, 25 or 50.
    pub overlap: u8,
}

/// More steps than anyone waits for (a week at 60 ms): a bound that keeps every count in range.
pub const MAX_STEPS: usize = 10_000_000;

impl Default for TrainingConfig {
    /// A cross-entropy warm-up of 2 epochs, a linear ramp to the GDL over 4 more, 1/G weights
    /// (1/G² let the rarest class starve the others in our runs), Adam at 1e-2, clipping at 1.
    /// On the 64³ demo phantom, scored on a held-out one, 151 steps (to λ = 1) at 3e-3 learned
    /// the necrotic core in 1 of 3 seeds, at 1e-2 in 3 of 6; 300 steps at 1e-2 learn every class
    /// (tests/convergence.rs). The seed's own recipe is `warmup=bce&schedule=switch&w_type=square`.
    fn default() -> Self {
        let loss = MixedLossConfig::default();
        Self {
            model: ModelKind::Unet,
            targets: Targets::Classes,
            pretrain_epochs: 0,
            warmup: WarmupLoss::Ce,
            schedule: Schedule::Linear,
            warmup_epochs: 2.0,
            ramp_epochs: 4.0,
            bce_weight: loss.bce_weight,
            gdl_weight: loss.gdl_weight,
            w_type: WeightType::Simple,
            include_background: loss.gdl.include_background,
            batch_dice: loss.gdl.batch,
            smooth_nr: loss.gdl.smooth_nr,
            smooth_dr: loss.gdl.smooth_dr,
            misuse: None,
            lr: 1e-2,
            clip: 1.0,
            patch: 32,
            batch: 2,
            steps_per_epoch: 25,
            epochs: 20,
            seed: 42,
            crop: true,
            resample: true,
            overlap: 25,
        }
    }
}

impl TrainingConfig {
    /// The compact form: only the settings that differ from the defaults, e.g.
    /// `model=simple&lr=0.01`.
    pub fn to_query(&self) -> String {
        changed_pairs(self, &Self::default())
    }

    /// Parses [`to_query`](Self::to_query)'s form (any subset of the keys, in any order) and
    /// checks the result.
    pub fn from_query(query: &str) -> Result<Self, String> {
        let config: Self = parse_pairs(query.trim_start_matches(['#', '?']))?;
        config.validate()?;
        Ok(config)
    }

    /// A sentence for the first setting that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        let multiple = self.model.edge_multiple();
        if self.patch < 4 || self.patch > 256 || !self.patch.is_multiple_of(multiple) {
            return Err(format!(
                "The patch edge must be between 4 and 256 voxels{}; it is {}.",
                if multiple > 1 {
                    format!(
                        " and a multiple of {multiple} for the {}",
                        self.model.name()
                    )
                } else {
                    String::new()
                },
                self.patch
            ));
        }
        if !(1..=64).contains(&self.batch) {
            return Err(format!(
                "The batch must hold 1 to 64 patches; it is {}.",
                self.batch
            ));
        }
        if self.steps_per_epoch == 0 {
            return Err("An epoch needs at least one step.".into());
        }
        let steps = self.epochs.checked_mul(self.steps_per_epoch);
        if steps.is_none_or(|steps| steps > MAX_STEPS) {
            return Err(format!(
                "{} epochs of {} steps is more than {MAX_STEPS} steps; lower epochs or \
                 steps_per_epoch.",
                self.epochs, self.steps_per_epoch
            ));
        }
        if !matches!(self.overlap, 0 | 25 | 50) {
            return Err(format!(
                "The prediction windows' overlap must be 0, 25 or 50 (%); it is {}.",
                self.overlap
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!(
                "The learning rate must be positive; it is {}.",
                self.lr
            ));
        }
        if !(self.clip.is_finite() && self.clip >= 0.0) {
            return Err(format!(
                "The clipping norm must be positive (or 0 for no clipping); it is {}.",
                self.clip
            ));
        }
        let non_negative = [
            ("warmup_epochs", self.warmup_epochs),
            ("ramp_epochs", self.ramp_epochs),
            ("bce_weight", self.bce_weight),
            ("gdl_weight", self.gdl_weight),
            ("smooth_nr", self.smooth_nr),
            ("smooth_dr", self.smooth_dr),
        ];
        if let Some((name, value)) = non_negative
            .iter()
            .find(|(_, value)| !(value.is_finite() && *value >= 0.0))
        {
            return Err(format!("{name} must be a number ≥ 0; it is {value}."));
        }
        if self.targets == Targets::Regions && self.warmup == WarmupLoss::Ce {
            return Err(
                "Region targets overlap (a voxel of the enhancing tumour is in all three), and \
                 cross-entropy is a softmax over the channels: train regions with warmup=bce, \
                 a sigmoid per region."
                    .into(),
            );
        }
        if self.targets == Targets::Regions && !self.include_background {
            return Err(
                "With region targets there is no background channel: the first is the whole \
                 tumour, which include_background=false would drop. Keep include_background \
                 on."
                .into(),
            );
        }
        if self.pretrain_epochs > 0 && self.model != ModelKind::Target {
            return Err(
                "Pretraining a Simple net and widening it only makes sense for model=target."
                    .into(),
            );
        }
        Ok(())
    }

    pub fn loss(&self) -> MixedLossConfig {
        MixedLossConfig {
            warmup_loss: self.warmup,
            schedule: self.schedule,
            warmup_epochs: self.warmup_epochs,
            ramp_epochs: self.ramp_epochs,
            bce_weight: self.bce_weight,
            gdl_weight: self.gdl_weight,
            gdl: GdlConfig {
                weight_type: self.w_type,
                include_background: self.include_background,
                batch: self.batch_dice,
                smooth_nr: self.smooth_nr,
                smooth_dr: self.smooth_dr,
                sigmoid: self.targets == Targets::Regions,
            },
            misuse: self.misuse,
        }
    }

    pub fn total_steps(&self) -> usize {
        self.epochs.saturating_mul(self.steps_per_epoch)
    }

    /// A small, fast run for demos and tests: the seed's Simple net and its `MixedLoss` (BCE ×
    /// 0.5 for 2 epochs, then the square-weighted GDL) on `patch`³ patches.
    pub fn quick(patch: usize) -> Self {
        Self {
            model: ModelKind::Simple,
            warmup: WarmupLoss::Bce,
            schedule: Schedule::Switch,
            ramp_epochs: 0.0,
            w_type: WeightType::Square,
            clip: 0.0,
            patch,
            batch: 1,
            lr: 5e-3,
            ..Self::default()
        }
    }
}

/// `key=value&…` for the fields of a flat struct that differ from `default`.
pub fn changed_pairs<T: Serialize>(value: &T, default: &T) -> String {
    let pairs = |value: &T| -> Vec<(String, String)> {
        let text = serde_urlencoded::to_string(value).expect("flat settings serialise");
        serde_urlencoded::from_str(&text).expect("its own output parses")
    };
    let defaults = pairs(default);
    let changed: Vec<(String, String)> = pairs(value)
        .into_iter()
        .filter(|pair| !defaults.contains(pair))
        .collect();
    serde_urlencoded::to_string(changed).expect("pairs serialise")
}

/// Parses `key=value&…` into a flat struct; on failure, names the first pair that is wrong.
pub fn parse_pairs<T: serde::de::DeserializeOwned>(query: &str) -> Result<T, String> {
    serde_urlencoded::from_str(query).map_err(|error| {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
        let culprit = pairs.iter().find(|pair| {
            let alone = serde_urlencoded::to_string([pair]).unwrap_or_default();
            serde_urlencoded::from_str::<T>(&alone).is_err()
        });
        match culprit {
            Some((key, value)) => format!("The setting {key}={value} could not be used: {error}."),
            None => format!("The settings could not be read: {error}."),
        }
    })
}
