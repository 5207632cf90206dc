//! The page's whole state as one value behind the URL hash: the training settings (the same
//! `key=value` names as the CLI flags) plus the few settings only the page has.

use serde::{Deserialize, Serialize};

use crate::model::ModelKind;
use crate::train::TrainingConfig;
use crate::train::config::{changed_pairs, parse_pairs};

/// Where the page trains.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// Time a few steps on WebGPU and on the CPU before the first step; train on the faster.
    #[default]
    Auto,
    /// WebGPU when the browser has it (else the CPU, with a banner).
    Gpu,
    /// burn's flex backend compiled to wasm: on machines without a real GPU it can be much
    /// faster than a software WebGPU adapter.
    Cpu,
}

/// Which weights the exports carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportedWeights {
    /// The latest step's.
    #[default]
    Last,
    /// Those of the step with the best mean validation Dice (the latest without held-out cases).
    Best,
}

/// Settings that belong to the page rather than to the training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PageSettings {
    pub backend: BackendChoice,
    /// Predict the whole volume every this many steps (0: only when asked or at the end).
    pub eval_every: usize,
    /// Edge of the demo phantom, in voxels.
    pub demo_size: usize,
    /// Score the held-out cases every this many steps (0: once per epoch), and at the end.
    pub val_every: usize,
    pub weights: ExportedWeights,
    /// On the CPU in the page: how many workers (one core each) split each batch; 0 = one per
    /// core the browser reports, never more than the batch has patches.
    pub cpu_workers: usize,
}

impl Default for PageSettings {
    fn default() -> Self {
        Self {
            backend: BackendChoice::Auto,
            eval_every: 25,
            demo_size: 64,
            val_every: 0,
            weights: ExportedWeights::Last,
            cpu_workers: 0,
        }
    }
}

impl PageSettings {
    const KEYS: [&'static str; 6] = [
        "backend",
        "eval_every",
        "demo_size",
        "val_every",
        "weights",
        "cpu_workers",
    ];

    /// The most workers `cpu_workers` may ask for.
    pub const MOST_CPU_WORKERS: usize = 64;

    pub fn validate(&self) -> Result<(), String> {
        if !(32..=128).contains(&self.demo_size) {
            return Err(format!(
                "The demo scan's edge must be 32 to 128 voxels; it is {}.",
                self.demo_size
            ));
        }
        if self.cpu_workers > Self::MOST_CPU_WORKERS {
            return Err(format!(
                "cpu_workers must be 0 (one per core) to {}; it is {}.",
                Self::MOST_CPU_WORKERS,
                self.cpu_workers
            ));
        }
        Ok(())
    }
}

/// Everything a shared link restores.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PageState {
    pub config: TrainingConfig,
    pub page: PageSettings,
}

impl PageState {
    /// `key=value&…` with only the settings that differ from the defaults.
    pub fn to_hash(&self) -> String {
        let mut parts = Vec::new();
        let config = self.config.to_query();
        if !config.is_empty() {
            parts.push(config);
        }
        let page = changed_pairs(&self.page, &PageSettings::default());
        if !page.is_empty() {
            parts.push(page);
        }
        parts.join("&")
    }

    /// Parses [`to_hash`](Self::to_hash)'s form (a leading `#` or `?` is ignored). A bad or
    /// unknown key gives a sentence naming it.
    pub fn from_hash(hash: &str) -> Result<Self, String> {
        let hash = hash.trim_start_matches(['#', '?']);
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(hash)
            .map_err(|error| format!("The link's settings could not be read: {error}."))?;
        let (page, config): (Vec<_>, Vec<_>) = pairs
            .into_iter()
            .partition(|(key, _)| PageSettings::KEYS.contains(&key.as_str()));
        let encode = |pairs: Vec<(String, String)>| {
            serde_urlencoded::to_string(pairs).expect("pairs serialise")
        };
        let config = TrainingConfig::from_query(&encode(config))?;
        let page: PageSettings = parse_pairs(&encode(page))?;
        page.validate()?;
        Ok(Self { config, page })
    }

    /// True when going from `self` to `next` keeps the run: only the learning rate (which the
    /// session takes mid-run, e.g. after a NaN stop), the prediction's overlap or page-only
    /// settings changed.
    pub fn same_run(&self, next: &Self) -> bool {
        let mut same_lr = next.config.clone();
        same_lr.lr = self.config.lr;
        same_lr.overlap = self.config.overlap;
        same_lr == self.config && next.page.backend == self.page.backend
    }

    /// Settings that keep a software adapter (SwiftShader, lavapipe) or the CPU interactive and
    /// still learn every class: the seed's Target net on two 16³ patches a step of a 32³ demo
    /// scan, evaluated every 10 steps, the loss as it was. With the default recipe every class
    /// of a held-out phantom passes a hard Dice of 0.5 within its 200 steps for each seed we
    /// tried (`tests/convergence.rs`); the Simple net never learned the necrotic core, and the
    /// Target net on one patch a step missed it for two seeds in four.
    pub fn small(&self) -> Self {
        let mut smaller = self.clone();
        smaller.config.model = ModelKind::Target;
        smaller.config.pretrain_epochs = 0;
        smaller.config.patch = 16;
        smaller.config.batch = 2;
        smaller.config.steps_per_epoch = 10;
        smaller.page.demo_size = 32;
        smaller.page.eval_every = 10;
        smaller
    }
}
