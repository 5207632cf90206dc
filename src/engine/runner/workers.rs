//! The page's other CPU workers ([`BatchHelpers`], one core each): how many a step on the CPU
//! may use (the cores the browser reports, the page's `cpu_workers`, the batch's patches) and
//! what the "Training on" line says about them. Natively there are none: flex's convolutions
//! run on rayon's threads there.

use crate::backend::ComputeDevice;
use crate::train::session::shard::{BatchHelpers, ShardFuture, ShardRequest, shares};
use crate::train::{TrainingConfig, TrainingSession};
use crate::view::PageSettings;

/// At most `count` of `helpers`.
pub(super) struct Limited<'a> {
    helpers: &'a dyn BatchHelpers,
    count: usize,
}

impl BatchHelpers for Limited<'_> {
    fn count(&self) -> usize {
        self.count
    }

    fn compute(&self, requests: Vec<ShardRequest>) -> ShardFuture {
        self.helpers.compute(requests)
    }
}

/// The helpers a step on `device` may use: none on a GPU, and besides this worker at most
/// `cpu_workers − 1` when the page asks for a number.
pub(super) fn step_helpers<'a>(
    helpers: Option<&'a dyn BatchHelpers>,
    device: Option<&ComputeDevice>,
    page: &PageSettings,
) -> Option<Limited<'a>> {
    let helpers = helpers?;
    if device.is_none_or(ComputeDevice::is_gpu_backend) {
        return None;
    }
    let count = match page.cpu_workers {
        0 => helpers.count(),
        asked => helpers.count().min(asked - 1),
    };
    Some(Limited { helpers, count })
}

/// What the device line adds about the workers on the CPU in the page: how many split each
/// batch, or why one trains alone. `None` where there are no helpers at all (natively, on a
/// GPU).
pub(super) fn workers_sentence(
    session: &TrainingSession,
    helpers: Option<&Limited<'_>>,
    failure: Option<&str>,
) -> Option<String> {
    if let Some(failure) = failure {
        return Some(format!(
            "one worker: a helper worker failed ({failure}), so this one trains alone"
        ));
    }
    let helpers = helpers?;
    let config = session.config();
    let workers = session.workers_for(helpers.count);
    Some(if workers > 1 {
        format!(
            "each batch of {} patches split across {workers} workers, one core each",
            config.batch
        )
    } else if config.batch_dice {
        "one worker: with the GDL's sums pooled over the batch (batch_dice) a batch is not split"
            .into()
    } else if config.batch == 1 {
        "one worker: a batch of one patch has nothing to split (more patches use more cores)".into()
    } else if helpers.helpers.count() == 0 {
        "one worker: the browser reports one core".into()
    } else {
        "one worker (cpu_workers=1)".into()
    })
}

impl super::Engine {
    /// How many workers (one core each) a step of `config` on the CPU uses.
    pub(super) fn cpu_workers_for(&self, config: &TrainingConfig) -> usize {
        let helpers = step_helpers(
            self.helpers.as_deref(),
            Some(&self.devices.cpu),
            &self.settings.page,
        );
        shares(config, helpers.map_or(0, |helpers| helpers.count)).len()
    }
}
