//! What a step reads back from the device, and how the numbers are decoded: one asynchronous
//! transfer, since a synchronous read panics in the browser.

use burn::prelude::*;

use crate::loss::GdlRun;
use crate::loss::monitor::{GdlInputStats, GdlRows, STATISTICS, input_statistics};
use crate::report::GdlAnatomy;
use crate::train::TrainError;
use crate::volume::REGION_SHORT;

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
        } else if run.regions {
            REGION_SHORT.map(String::from).to_vec()
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

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use burn::tensor::Distribution;

    use super::*;
    use crate::loss::{GdlConfig, gdl_pipeline};
    use crate::sample::one_hot;

    /// The anatomy and the monitor's two row statistics, reduced on the CPU from the read-back
    /// parts, are what reductions on the device give: means over the samples for Dice, w and the
    /// contributions, sums for I, P and G (two samples, so that a sum taken for a mean, or rows
    /// and classes mixed up, shows).
    #[test]
    fn the_cpu_reduces_the_samples_as_the_device_would() {
        let device = Device::flex();
        device.seed(5);
        let shape = [2, 3, 4, 4, 4];
        let logits = Tensor::<5>::random(shape, Distribution::Normal(0.0, 2.0), &device);
        let labels: Vec<u8> = (0..128).map(|i| ((i * 7 + i / 5) % 3) as u8).collect();
        let masks: Vec<f32> = labels.chunks(64).flat_map(|s| one_hot(s, 3)).collect();
        let target = Tensor::<5>::from_data(TensorData::new(masks, shape), &device);
        let run = gdl_pipeline(logits, target, &GdlConfig::default(), None);
        let values = pollster::block_on(read_back_all(gdl_readout(&run))).unwrap();
        let anatomy = GdlAnatomy::from_readout(&values, &run, true);

        let read = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
        let mean = |t: &Tensor<2>| read(t.clone().mean_dim(0).reshape([-1]));
        let sum = |t: &Tensor<2>| read(t.clone().sum_dim(0).reshape([-1]));
        let parts = &run.parts;
        let sums = &parts.sums;
        let close = |ours: f32, theirs: f32| (ours - theirs).abs() <= 1e-5 * theirs.abs().max(1.0);
        for (name, ours, theirs) in [
            ("Dice", &anatomy.dice, mean(&parts.dice)),
            ("w", &anatomy.weight, mean(&parts.weight)),
            ("I", &anatomy.intersection, sum(&sums.intersection)),
            ("P", &anatomy.prediction, sum(&sums.prediction)),
            ("G", &anatomy.target, sum(&sums.target)),
            (
                "contribution",
                &anatomy.contribution,
                mean(&parts.contribution),
            ),
        ] {
            assert_eq!(ours.len(), 3, "{name}");
            assert!(
                ours.iter().zip(&theirs).all(|(&a, &b)| close(a, b)),
                "{name}: {ours:?} on the CPU, {theirs:?} on the device"
            );
        }
        let w_min = read(parts.weight.clone().min().reshape([1]))[0];
        let miss = sums.prediction.clone() + sums.target.clone() - sums.intersection.clone() * 2.0;
        let weighted_miss = read((parts.weight.clone() * miss).sum_dim(1).min().reshape([1]))[0];
        let monitor = anatomy.monitor;
        assert!(close(monitor.w_min, w_min), "{monitor:?}, w_min {w_min}");
        assert!(
            close(monitor.weighted_miss, weighted_miss),
            "{monitor:?}, weighted miss {weighted_miss}"
        );
    }
}
