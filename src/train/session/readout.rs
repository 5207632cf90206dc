//! What a step reads back from the device, and how the numbers are decoded: one asynchronous
//! transfer, since a synchronous read panics in the browser.

use burn::prelude::*;

use crate::loss::GdlRun;
use crate::loss::monitor::{GdlInputStats, GdlRows, STATISTICS, input_statistics};
use crate::report::GdlAnatomy;
use crate::train::TrainError;

/// The tensors [`GdlAnatomy::from_readout`] reads: the monitor's statistics, then the run's
/// per-class parts as they are ([`GdlRows`]).
pub(super) fn gdl_readout(run: &GdlRun) -> Vec<Tensor<1>> {
    let mut readout = input_statistics(run);
    readout.extend(GdlRows::tensors(&run.parts));
    readout
}

impl GdlAnatomy {
    pub(super) fn from_readout(values: &[f32], run: &GdlRun, include_background: bool) -> Self {
        let (statistics, parts) = values.split_at(STATISTICS);
        let channels = run.parts.weight.dims()[1];
        let rows = GdlRows::from_values(parts, channels);
        let monitor = GdlInputStats::from_readout(statistics, &rows, run);
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
            dice: rows.mean_over_rows(&rows.dice),
            weight: rows.mean_over_rows(&rows.weight),
            intersection: rows.sum_over_rows(&rows.intersection),
            prediction: rows.sum_over_rows(&rows.prediction),
            target: rows.sum_over_rows(&rows.target),
            contribution: rows.mean_over_rows(&rows.contribution),
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
