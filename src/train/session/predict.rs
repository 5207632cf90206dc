//! Whole-volume prediction with the session's net: sliding windows, Gaussian blending, the
//! hard Dice per class.

use burn::prelude::*;
use web_time::Instant;

use super::readout::read_back;
use super::{TrainingSession, normalised};
use crate::report::{Evaluation, hard_dice, mean_foreground};
use crate::sample::{blending_weights, normalise_channels, window_starts};
use crate::train::TrainError;
use crate::volume::boxes::{crop, overlap};
use crate::volume::{LabelledVolume, RegionMap, Tissue};

impl TrainingSession {
    /// Predicts the whole volume with sliding windows (overlapping by the `overlap` setting, Gaussian
    /// blending) and scores it with the hard Dice per class.
    pub async fn evaluate(&self) -> Result<Evaluation, TrainError> {
        self.predict_and_score(self.volume(), &mut |_, _| true)
            .await
    }

    /// [`Self::evaluate`], telling `progress(windows done, windows in all)` after each window;
    /// when it returns false the prediction stops with [`TrainError::Cancelled`].
    pub async fn evaluate_with_progress(
        &self,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<Evaluation, TrainError> {
        self.predict_and_score(self.volume(), progress).await
    }

    /// The net's logits for the whole of `volume` in one forward pass, its intensities
    /// normalised as training does: `[1, classes, z, y, x]` flattened (what a PyTorch copy of
    /// the net must reproduce). The U-Net needs edges that are multiples of 4.
    pub async fn whole_volume_logits(
        &self,
        volume: &LabelledVolume,
    ) -> Result<Vec<f32>, TrainError> {
        let multiple = self.net.kind().edge_multiple();
        if volume.dims.iter().any(|d| d % multiple != 0) {
            return Err(TrainError::Config(format!(
                "The {} net takes edges that are multiples of {multiple}; this volume is {:?}.",
                self.net.kind().name(),
                volume.dims
            )));
        }
        self.check_fits(volume)?;
        let mut normalised = volume.clone();
        normalise_channels(&mut normalised);
        let [nx, ny, nz] = volume.dims;
        let shape = [1, volume.channels, nz, ny, nx];
        let input = Tensor::<5>::from_data(TensorData::new(normalised.image, shape), &self.device);
        read_back(self.net.valid().forward(input)).await
    }

    /// [`Self::evaluate`] on another scan with the same classes (e.g. a held-out volume),
    /// normalised as the training volume was.
    pub async fn evaluate_on(&self, volume: &LabelledVolume) -> Result<Evaluation, TrainError> {
        self.check_fits(volume)?;
        self.predict_and_score(&normalised(volume), &mut |_, _| true)
            .await
    }

    /// [`Self::evaluate_on`] for a case already prepared and normalised as the training cases
    /// were (a validation case the engine keeps).
    pub async fn evaluate_normalised(
        &self,
        volume: &LabelledVolume,
    ) -> Result<Evaluation, TrainError> {
        self.check_fits(volume)?;
        self.predict_and_score(volume, &mut |_, _| true).await
    }

    /// A sentence when `volume` has other classes or channels than the net was trained on.
    fn check_fits(&self, volume: &LabelledVolume) -> Result<(), TrainError> {
        let trained = self.volume();
        if volume.classes != trained.classes {
            return Err(TrainError::Config(format!(
                "The scan to evaluate has {} classes; the net was trained on {}.",
                volume.classes, trained.classes
            )));
        }
        if volume.channels != trained.channels {
            return Err(TrainError::Config(format!(
                "The scan to evaluate has {} channels; the net was trained on {}.",
                volume.channels, trained.channels
            )));
        }
        Ok(())
    }

    async fn predict_and_score(
        &self,
        volume: &LabelledVolume,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<Evaluation, TrainError> {
        let started = Instant::now();
        let net = self.net.valid();
        let [nx, ny, nz] = volume.dims;
        let classes = self.output_channels();
        let edge = self.config.patch;
        let window = edge * edge * edge;
        let weights = blending_weights(edge);
        let weight_tensor =
            Tensor::<1>::from_data(TensorData::new(weights.clone(), [window]), &self.device)
                .reshape([1, 1, edge, edge, edge]);

        let mut sum = vec![0.0f32; classes * volume.voxel_count()];
        let mut weight_sum = vec![0.0f32; volume.voxel_count()];
        let overlap = self.config.overlap as f64 / 100.0;
        let [xs, ys, zs] = [nx, ny, nz].map(|size| window_starts(size, edge, overlap));
        let mut origins = Vec::with_capacity(xs.len() * ys.len() * zs.len());
        for &z in &zs {
            for &y in &ys {
                origins.extend(xs.iter().map(|&x| [x, y, z]));
            }
        }
        // As many windows per forward pass as a training batch has patches: the memory check
        // has admitted that much (and more: training also keeps activations for backward).
        let per_pass = self.config.batch.max(1);
        let mut windows = 0;
        for group in origins.chunks(per_pass) {
            let mut patches = Vec::with_capacity(group.len() * volume.channels * window);
            for &origin in group {
                for plane in volume.channel_planes() {
                    patches.extend(crop(plane, volume.dims, origin, [edge; 3], 0.0));
                }
            }
            let input = Tensor::<5>::from_data(
                TensorData::new(patches, [group.len(), volume.channels, edge, edge, edge]),
                &self.device,
            );
            let logits = net.forward(input);
            // A region net's sigmoids; a softmax over its regions when the lab's cause trains
            // it so, so that its prediction is what that pipeline would make.
            let sigmoid = self.regions.is_some()
                && self.config.misuse != Some(crate::loss::Misuse::SoftmaxOverRegions);
            let probs = if sigmoid {
                burn::tensor::activation::sigmoid(logits)
            } else {
                burn::tensor::activation::softmax(logits, 1)
            } * weight_tensor.clone();
            let probs = read_back(probs).await?;
            for (index, &origin) in group.iter().enumerate() {
                let one = &probs[index * classes * window..(index + 1) * classes * window];
                accumulate_window(
                    &mut sum,
                    &mut weight_sum,
                    one,
                    &weights,
                    volume.dims,
                    origin,
                    edge,
                );
            }
            windows += group.len();
            // On the CPU backend the read-back is ready at once; without this the whole
            // prediction would be one long task on the page's thread (and a worker could not
            // hear "cancel").
            crate::backend::yield_now().await;
            if !progress(windows, origins.len()) {
                return Err(TrainError::Cancelled);
            }
        }

        let voxels = volume.voxel_count();
        if let Some(map) = &self.regions {
            return Ok(region_evaluation(
                map,
                volume,
                sum,
                &weight_sum,
                windows,
                started.elapsed().as_secs_f64() * 1000.0,
            ));
        }
        let mut labels = vec![0u8; voxels];
        for (voxel, label) in labels.iter_mut().enumerate() {
            let norm = weight_sum[voxel].max(f32::MIN_POSITIVE);
            let mut best = (0, f32::MIN);
            for class in 0..classes {
                let p = sum[class * voxels + voxel] / norm;
                sum[class * voxels + voxel] = p;
                if p > best.1 {
                    best = (class, p);
                }
            }
            *label = best.0 as u8;
        }
        let dice = hard_dice(&labels, &volume.labels, classes);
        let mean_foreground_dice = mean_foreground(&dice);
        Ok(Evaluation {
            dice,
            mean_foreground_dice,
            region_dice: Vec::new(),
            labels,
            probabilities: sum,
            windows,
            millis: started.elapsed().as_secs_f64() * 1000.0,
        })
    }
}

/// The evaluation of a region net from its blended sigmoid sums (three planes: WT, TC, ET):
/// each region where its probability exceeds ½, the classes written back as BraTS does
/// ([`RegionMap::class_of`]), Dice per region (BraTS's score, whose mean ranks the runs) and per
/// class, and class probabilities split down the regions' nesting (background 1 − WT, oedema
/// WT·(1 − TC), core WT·TC·(1 − ET), enhancing WT·TC·ET), so that they sum to 1 as a softmax's do.
fn region_evaluation(
    map: &RegionMap,
    volume: &LabelledVolume,
    sums: Vec<f32>,
    weight_sum: &[f32],
    windows: usize,
    millis: f64,
) -> Evaluation {
    let voxels = volume.voxel_count();
    let classes = map.classes();
    let mut labels = vec![0u8; voxels];
    let mut probabilities = vec![0.0f32; classes * voxels];
    for (voxel, label) in labels.iter_mut().enumerate() {
        let norm = weight_sum[voxel].max(f32::MIN_POSITIVE);
        let [wt, tc, et] = [0, 1, 2].map(|region| sums[region * voxels + voxel] / norm);
        *label = map.class_of([wt > 0.5, tc > 0.5, et > 0.5]);
        for (class, tissue) in map.tissues.iter().enumerate() {
            probabilities[class * voxels + voxel] = match tissue {
                Tissue::Background => 1.0 - wt,
                Tissue::Oedema => wt * (1.0 - tc),
                Tissue::Core => wt * tc * (1.0 - et),
                Tissue::Enhancing => wt * tc * et,
            };
        }
    }
    let dice = hard_dice(&labels, &volume.labels, classes);
    let region_dice = map.region_dice(&labels, &volume.labels).to_vec();
    Evaluation {
        dice,
        mean_foreground_dice: region_dice.iter().sum::<f32>() / region_dice.len() as f32,
        region_dice,
        labels,
        probabilities,
        windows,
        millis,
    }
}

/// Adds one window's weighted probabilities (`classes` planes of `edge`³) into the volume-sized
/// sums, row by row, skipping the padding outside the volume.
fn accumulate_window(
    sum: &mut [f32],
    weight_sum: &mut [f32],
    probs: &[f32],
    weights: &[f32],
    dims: [usize; 3],
    origin: [isize; 3],
    edge: usize,
) {
    let Some([xs, ys, zs]) = overlap(dims, origin, [edge; 3]) else {
        return;
    };
    let voxels = dims.iter().product::<usize>();
    let window = edge * edge * edge;
    let classes = probs.len() / window;
    let local = |p: usize, axis: usize| (p as isize - origin[axis]) as usize;
    for z in zs {
        for y in ys.clone() {
            let volume_row = xs.start + dims[0] * (y + dims[1] * z);
            let window_row = local(xs.start, 0) + edge * (local(y, 1) + edge * local(z, 2));
            for i in 0..xs.len() {
                weight_sum[volume_row + i] += weights[window_row + i];
            }
            for class in 0..classes {
                let (to, from) = (class * voxels + volume_row, class * window + window_row);
                for i in 0..xs.len() {
                    sum[to + i] += probs[from + i];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each region where its sigmoid exceeds ½, written back as BraTS writes its labels (ET
    /// wins, then TC, then WT), class probabilities that sum to 1, and Dice per region.
    #[test]
    fn region_outputs_are_written_back_as_brats_classes() {
        let volume = LabelledVolume {
            dims: [4, 1, 1],
            image: vec![0.0; 4],
            channels: 1,
            labels: vec![3, 1, 2, 0],
            classes: 4,
        };
        let sums = [
            [0.9, 0.9, 0.9, 0.1], // WT
            [0.9, 0.8, 0.2, 0.1], // TC
            [0.9, 0.1, 0.1, 0.7], // ET
        ]
        .concat()
        .iter()
        .map(|p| p * 2.0) // blended over windows of weight 2 in all
        .collect();
        let evaluation = region_evaluation(&RegionMap::brats(), &volume, sums, &[2.0; 4], 1, 0.0);
        // ET; TC inside WT: the necrotic core; WT alone: oedema; ET alone still ET.
        assert_eq!(evaluation.labels, [3, 1, 2, 3]);
        for voxel in 0..4 {
            let total: f32 = (0..4)
                .map(|class| evaluation.probabilities[class * 4 + voxel])
                .sum();
            assert!((total - 1.0).abs() < 1e-6, "voxel {voxel}: {total}");
        }
        // Truth WT {0, 1, 2}, predicted {0, 1, 2, 3}: 6/7; TC {0, 1} vs {0, 1, 3}: 4/5;
        // ET {0} vs {0, 3}: 2/3.
        let expected = [6.0 / 7.0, 0.8, 2.0 / 3.0];
        for (ours, expected) in evaluation.region_dice.iter().zip(expected) {
            assert!(
                (ours - expected).abs() < 1e-6,
                "{:?}",
                evaluation.region_dice
            );
        }
    }
}
