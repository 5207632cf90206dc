//! A step's batch split across workers: in the page the CPU backend runs on one thread per
//! worker (wasm threads need a second, atomics-enabled build of the worker and a nightly
//! toolchain: issue 30), so every other core is reached by workers that each compute the
//! gradient of a share of the batch ([`ShardWorker`]). The session computes the first share
//! itself, adds the others' gradients, and clips and steps Adam once, as for the whole batch.
//!
//! Why this is exact: with the per-sample GDL (the default) every term of the mixed loss is a
//! mean over the batch's patches (CE and BCE over its voxels, the GDL over its samples), so the
//! batch's loss is `Σ_i (n_i / n) · L_i` over shares of `n_i` patches, and so is its gradient.
//! With `batch_dice` the GDL's sums run over the whole batch and a share's gradient is not a
//! part of it: such runs are not split ([`shares`]).

use std::future::Future;
use std::pin::Pin;

use burn::module::{ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::loss::monitor::{GdlRows, STATISTICS};
use crate::model::{ModelKind, SegmentationNet};
use crate::train::TrainError;
use crate::train::config::TrainingConfig;

use super::fresh_net;
use super::readout::{gdl_readout, read_back_all};
use crate::sample::Batch;

/// One share of a step's batch, as a helper computes it: the settings (for the loss), the net's
/// weights now, and the share's patches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardRequest {
    pub config: TrainingConfig,
    /// The net being trained now (the Simple net while pretraining, then the widened one).
    pub model: ModelKind,
    pub channels: usize,
    pub outputs: usize,
    /// The loss's schedule position (epochs done before this step).
    pub epochs_done: f64,
    /// The weights as [`crate::model::weights::to_safetensors`] wrote them.
    pub weights: Vec<u8>,
    /// `[patches, channels, d, h, w]` and its values.
    pub image_shape: [usize; 5],
    pub image: Vec<f32>,
    /// `[patches, outputs, d, h, w]` and its values.
    pub target_shape: [usize; 5],
    pub target: Vec<f32>,
}

/// What a helper computed for its share: every parameter's gradient (the net's parameters in
/// visiting order, flattened one after the other) and the share's readout, laid out as
/// [`share_readout`] lays it out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardResult {
    pub gradients: Vec<f32>,
    pub readout: Vec<f32>,
}

/// A future that the page's worker can hold (no `Send`: the browser's workers are single
/// threaded and their handles are not `Send`).
pub type ShardFuture = Pin<Box<dyn Future<Output = Vec<Result<ShardResult, String>>>>>;

/// Other workers that compute shares of a step's batch.
pub trait BatchHelpers {
    /// How many shares other workers can take at most.
    fn count(&self) -> usize;
    /// Sends each request to its own helper at once (they compute while the caller computes its
    /// own share) and returns a future of their answers, in the requests' order; a helper that
    /// fails answers with a sentence.
    fn compute(&self, requests: Vec<ShardRequest>) -> ShardFuture;
}

/// The patches of each share when a batch of `batch` patches is split among the session and
/// `helpers` other workers: one share per worker at most, as even as can be, the session's own
/// first; the whole batch in one share when splitting would change the loss (`batch_dice`).
pub fn shares(config: &TrainingConfig, helpers: usize) -> Vec<usize> {
    let workers = if config.batch_dice {
        1
    } else {
        (helpers + 1).min(config.batch).max(1)
    };
    let base = config.batch / workers;
    let extra = config.batch % workers;
    (0..workers)
        .map(|i| base + usize::from(i < extra))
        .collect()
}

/// The helper's side: computes shares' gradients, keeping the net it last built so that a step
/// only loads new weights into it.
pub struct ShardWorker {
    device: Device,
    net: Option<(ModelKind, usize, usize, SegmentationNet)>,
}

impl ShardWorker {
    /// A helper computing on `device` (the CPU backend in the page's helper workers).
    pub fn new(device: Device) -> Self {
        Self { device, net: None }
    }

    /// The gradient of the mixed loss on the request's patches at the request's weights.
    pub async fn compute(&mut self, request: ShardRequest) -> Result<ShardResult, TrainError> {
        let train_device = self.device.clone().autodiff();
        let key = (request.model, request.channels, request.outputs);
        let net = match &self.net {
            Some((model, channels, outputs, net)) if (*model, *channels, *outputs) == key => {
                net.clone()
            }
            _ => {
                let net = fresh_net(key.0, key.1, key.2, &train_device, None);
                self.net = Some((key.0, key.1, key.2, net.clone()));
                net
            }
        };
        let net = crate::model::weights::from_safetensors(&request.weights, net)
            .map_err(TrainError::Device)?;
        let tensor = |values: Vec<f32>, shape: [usize; 5]| {
            if values.len() != shape.iter().product::<usize>() {
                return Err(TrainError::Device(format!(
                    "A share of the batch came with {} values for its shape {shape:?}.",
                    values.len()
                )));
            }
            Ok(Tensor::<5>::from_data(
                TensorData::new(values, shape),
                &train_device,
            ))
        };
        let image = tensor(request.image, request.image_shape)?;
        let target = tensor(request.target, request.target_shape)?;
        let loss = request
            .config
            .loss()
            .forward(net.forward(image), target, request.epochs_done);
        let gradients = GradientsParams::from_grads(loss.total.backward(), &net);
        let flat = read_back_all(gradient_tensors(&net, &gradients)).await?;
        let readout = read_back_all(
            share_readout(&loss.total, &loss.warmup, &loss.gdl)
                .into_iter()
                .map(|t| t.without_autodiff())
                .collect(),
        )
        .await?;
        Ok(ShardResult {
            gradients: flat,
            readout,
        })
    }
}

/// What a share reads back besides its gradients: `[total, warm-up, the GDL's readout
/// ([`gdl_readout`])]`, the losses as means over the share.
pub(super) fn share_readout(
    total: &Tensor<1>,
    warmup: &Tensor<1>,
    gdl: &crate::loss::GdlRun,
) -> Vec<Tensor<1>> {
    let mut readout = vec![total.clone(), warmup.clone()];
    readout.extend(gdl_readout(gdl));
    readout
}

/// Every parameter's gradient in visiting order, flattened (a parameter without one, which no
/// net of ours has, as zeros so that the order holds).
pub(super) fn gradient_tensors(
    net: &SegmentationNet,
    gradients: &GradientsParams,
) -> Vec<Tensor<1>> {
    struct Collect<'a> {
        gradients: &'a GradientsParams,
        tensors: Vec<Tensor<1>>,
    }
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let gradient = self
                .gradients
                .get::<D>(param.id)
                .unwrap_or_else(|| param.val().inner().zeros_like());
            self.tensors.push(gradient.reshape([-1]));
        }
    }
    let mut collect = Collect {
        gradients,
        tensors: Vec::new(),
    };
    net.visit(&mut collect);
    collect.tensors
}

/// Makes `gradients` (the session's own share's, a mean over `own` of the batch) the whole
/// batch's: `own · g + Σ share · g_share`, the others' flattened as [`gradient_tensors`] lays
/// them out, with `share` their fraction of the batch.
pub(super) fn add_shares(
    net: &SegmentationNet,
    gradients: &mut GradientsParams,
    own: f32,
    others: &[(f32, &[f32])],
) -> Result<(), String> {
    struct Add<'a> {
        gradients: &'a mut GradientsParams,
        own: f32,
        others: &'a [(f32, &'a [f32])],
        offset: usize,
        error: Option<String>,
    }
    impl ModuleVisitor for Add<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let Some(gradient) = self.gradients.remove::<D>(param.id) else {
                // No gradient here (the parameter does not reach the loss): the others' zeros
                // for it are skipped, as [`gradient_tensors`] wrote them.
                self.offset += param.val().shape().num_elements();
                return;
            };
            let shape = gradient.shape();
            let count = shape.num_elements();
            let device = gradient.device();
            let mut sum = gradient.mul_scalar(self.own);
            for (share, values) in self.others {
                let Some(part) = values.get(self.offset..self.offset + count) else {
                    self.error = Some(format!(
                        "A worker sent {} gradient values; the net has more.",
                        values.len()
                    ));
                    break;
                };
                let part = Tensor::<1>::from_data(TensorData::new(part.to_vec(), [count]), &device)
                    .reshape(shape.clone());
                sum = sum + part.mul_scalar(*share);
            }
            self.offset += count;
            self.gradients.register::<D>(param.id, sum);
        }
    }
    let mut add = Add {
        gradients,
        own,
        others,
        offset: 0,
        error: None,
    };
    net.visit(&mut add);
    if let Some(error) = add.error {
        return Err(error);
    }
    match others.iter().find(|(_, values)| values.len() != add.offset) {
        Some((_, values)) => Err(format!(
            "A worker sent {} gradient values; the net has {}.",
            values.len(),
            add.offset
        )),
        None => Ok(()),
    }
}

/// The whole batch's readout from its shares' ([`share_readout`]'s layout, `(fraction of the
/// batch, values)` in the batch's order): the losses as the fractions' weighted means, the
/// volume maxima as maxima, and the GDL's rows (one per sample) one share after the other.
pub(super) fn merge_readouts(shares: &[(f32, &[f32])], classes: usize) -> Vec<f32> {
    const LOSSES: usize = 3; // total, warm-up, then the GDL's value (its readout's first).
    let mut merged = Vec::new();
    // [total, warm-up, GDL]: weighted means.
    for index in 0..LOSSES {
        merged.push(
            shares
                .iter()
                .map(|(share, values)| share * values[index])
                .sum(),
        );
    }
    // The maxima after the GDL's value: maxima again.
    let maxima = 2 + 1..2 + STATISTICS;
    for index in maxima.clone() {
        merged.push(
            shares
                .iter()
                .map(|(_, values)| values[index])
                .fold(f32::NEG_INFINITY, f32::max),
        );
    }
    // The rows: each part's rows, share after share.
    let rows: Vec<GdlRows> = shares
        .iter()
        .map(|(_, values)| GdlRows::from_values(&values[maxima.end..], classes))
        .collect();
    for part in 0..GdlRows::PARTS {
        for share in &rows {
            merged.extend_from_slice(share.part(part));
        }
    }
    merged
}

impl super::TrainingSession {
    /// The requests for every share after the session's own: the weights now and the share's
    /// patches, read back from the device.
    pub(super) async fn share_requests(
        &self,
        batch: &Batch,
        shares: &[usize],
        epochs_done: f64,
    ) -> Result<Vec<ShardRequest>, TrainError> {
        let weights = crate::model::weights::to_safetensors(&self.net, &[])
            .await
            .map_err(TrainError::Device)?;
        let mut start = shares[0];
        let mut parts = Vec::new();
        for &patches in &shares[1..] {
            parts.push(
                batch
                    .image
                    .clone()
                    .narrow(0, start, patches)
                    .without_autodiff(),
            );
            parts.push(
                batch
                    .target
                    .clone()
                    .narrow(0, start, patches)
                    .without_autodiff(),
            );
            start += patches;
        }
        let shapes: Vec<[usize; 5]> = parts.iter().map(|part| part.dims()).collect();
        let data = crate::backend::read_all(parts)
            .await
            .map_err(TrainError::Device)?;
        let mut values = data.into_iter().map(|data| {
            data.try_into_vec::<f32>()
                .map_err(|error| TrainError::Device(format!("{error:?}")))
        });
        let mut requests = Vec::new();
        for pair in shapes.chunks(2) {
            requests.push(ShardRequest {
                config: self.config.clone(),
                model: self.net.kind(),
                channels: self.volume().channels,
                outputs: self.output_channels(),
                epochs_done,
                weights: weights.clone(),
                image_shape: pair[0],
                image: values.next().expect("one per part")?,
                target_shape: pair[1],
                target: values.next().expect("one per part")?,
            });
        }
        Ok(requests)
    }

    /// The helpers' answers, a failed share computed here instead (and the failure kept for
    /// [`Self::take_helper_failure`]). An answer that is missing, or whose gradients or readout
    /// do not fit the net and the share, counts as a failure.
    pub(super) async fn answers(
        &mut self,
        answers: Vec<Result<ShardResult, String>>,
        requests: Vec<ShardRequest>,
    ) -> Result<Vec<ShardResult>, TrainError> {
        let parameters = self.net.num_params();
        let mut answers = answers.into_iter();
        let mut results = Vec::new();
        for request in requests {
            let patches = request.image_shape[0];
            let answer = answers
                .next()
                .unwrap_or_else(|| Err("it gave no answer".into()))
                .and_then(|result| fits(result, parameters, patches));
            results.push(match answer {
                Ok(result) => result,
                Err(message) => {
                    self.helper_failure = Some(message);
                    ShardWorker::new(self.device.clone())
                        .compute(request)
                        .await?
                }
            });
        }
        Ok(results)
    }
}

/// `result` when its gradients are one per parameter and its readout holds the losses, the
/// statistics and the GDL's rows for `patches` samples; else why not.
fn fits(result: ShardResult, parameters: usize, patches: usize) -> Result<ShardResult, String> {
    let head = 2 + STATISTICS;
    let rows = result.readout.len().checked_sub(head);
    if result.gradients.len() != parameters {
        Err(format!(
            "it sent {} gradient values for a net of {parameters}",
            result.gradients.len()
        ))
    } else if rows.is_none_or(|rows| rows % (GdlRows::PARTS * patches.max(1)) != 0) {
        Err(format!(
            "it sent {} readout values for {patches} patches",
            result.readout.len()
        ))
    } else {
        Ok(result)
    }
}
