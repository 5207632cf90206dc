//! The session's net applied to a scan it never trained on (`gdl-lab predict`, the page's
//! "Apply to a scan"): cropped and resampled as training prepares a scan, predicted with the
//! sliding window, the classes put back in the scan's own grid and scored there when it brought
//! a label map.

use super::TrainingSession;
use crate::report::{Evaluation, hard_dice, mean_foreground};
use crate::sample::normalise_channels;
use crate::train::TrainError;
use crate::volume::new_scan::NewScan;
use crate::volume::preprocess::{Preparation, PrepareOptions, prepare};

impl TrainingSession {
    /// The prediction of `scan` in its own grid (`labels`; `probabilities` left empty: they are
    /// on the working grid), with the hard Dice per class when the scan is labelled (else
    /// `dice` is empty), and how the scan was prepared.
    pub async fn apply_to(
        &self,
        scan: &NewScan,
        options: &PrepareOptions,
    ) -> Result<(Evaluation, Preparation), TrainError> {
        let (mut working, preparation) = prepare(&scan.volume, scan.image.spacing, options);
        normalise_channels(&mut working);
        let mut evaluation = self.evaluate_normalised(&working).await?;
        drop(working);
        evaluation.labels = preparation.labels_to_original(&evaluation.labels);
        evaluation.probabilities = Vec::new();
        if scan.labelled {
            evaluation.dice =
                hard_dice(&evaluation.labels, &scan.volume.labels, scan.volume.classes);
            evaluation.mean_foreground_dice = mean_foreground(&evaluation.dice);
            if let Some(map) = self.region_map() {
                evaluation.region_dice = map
                    .region_dice(&evaluation.labels, &scan.volume.labels)
                    .to_vec();
                evaluation.mean_foreground_dice = evaluation.region_dice.iter().sum::<f32>()
                    / evaluation.region_dice.len() as f32;
            }
        } else {
            evaluation.dice = Vec::new();
            evaluation.region_dice = Vec::new();
            evaluation.mean_foreground_dice = f32::NAN;
        }
        Ok((evaluation, preparation))
    }
}
