//! What a step reads back from the device, and how the numbers are decoded: one asynchronous
//! transfer, since a synchronous read panics in the browser.

use burn::prelude::*;

use crate::loss::GdlRun;
use crate::loss::monitor::{GdlInputStats, STATISTICS, input_statistics};
use crate::report::GdlAnatomy;
use crate::train::TrainError;

/// The tensors [`GdlAnatomy::from_readout`] reads: the monitor's statistics, then six
/// per-channel rows (Dice and w as means over samples, I, P and G as sums, the contribution).
pub(super) fn gdl_readout(run: &GdlRun) -> Vec<Tensor<1>> {
    let parts = &run.parts;
    let mean_rows = |t: &Tensor<2>| t.clone().mean_dim(0).reshape([-1]);
    let sum_rows = |t: &Tensor<2>| t.clone().sum_dim(0).reshape([-1]);
    let mut readout = input_statistics(run);
    readout.extend([
        mean_rows(&parts.dice),
        mean_rows(&parts.weight),
        sum_rows(&parts.sums.intersection),
        sum_rows(&parts.sums.prediction),
        sum_rows(&parts.sums.target),
        mean_rows(&parts.contribution),
    ]);
    readout
}

impl GdlAnatomy {
    pub(super) fn from_readout(values: &[f32], run: &GdlRun, include_background: bool) -> Self {
        let (statistics, per_channel) = values.split_at(STATISTICS);
        let monitor = GdlInputStats::from_slice(statistics, run);
        let channels = per_channel.len() / 6;
        let row = |index: usize| per_channel[index * channels..(index + 1) * channels].to_vec();
        let first_class = usize::from(!include_background);
        let names = if run.target.dims()[1] == 1 {
            vec!["foreground".to_string()]
        } else {
            (first_class..first_class + channels)
                .map(|c| c.to_string())
                .collect()
        };
        Self {
            value: monitor.gdl,
            explanation: monitor.explain(),
            violations: monitor.violations(),
            monitor,
            channels: names,
            dice: row(0),
            weight: row(1),
            intersection: row(2),
            prediction: row(3),
            target: row(4),
            contribution: row(5),
        }
    }
}

/// Copies `tensors` to the CPU in one transfer, their values one after the other, without
/// blocking (a synchronous read panics in the browser). One transaction rather than
/// `Tensor::cat`: a cat is one copy kernel per tensor (~25 launches a step), a transaction copies
/// buffers without launching anything.
pub(super) async fn read_back_all(tensors: Vec<Tensor<1>>) -> Result<Vec<f32>, TrainError> {
    let mut values = Vec::new();
    for data in crate::backend::read_all(tensors)
        .await
        .map_err(TrainError::Device)?
    {
        values.extend(
            data.try_into_vec::<f32>()
                .map_err(|error| TrainError::Device(format!("{error:?}")))?,
        );
    }
    Ok(values)
}

/// Copies a tensor to the CPU without blocking (a synchronous read panics in the browser).
pub(super) async fn read_back<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, TrainError> {
    tensor
        .into_data_async()
        .await
        .map_err(|error| TrainError::Device(error.to_string()))?
        .try_into_vec::<f32>()
        .map_err(|error| TrainError::Device(format!("{error:?}")))
}
