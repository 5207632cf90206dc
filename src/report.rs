//! What a training step and an evaluation tell the page, the CLI and the tests.

use serde::{Deserialize, Serialize};

use crate::loss::{GdlInputStats, WarmupLoss};
use crate::model::ModelKind;

/// The outcome of one training step: every loss component and what the GDL was made of.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Steps done so far, this one included (1 after the first step).
    pub step: usize,
    /// The epoch this step belonged to (from 0).
    pub epoch: usize,
    /// The net trained in this step (changes once when a pretrained Simple net is widened).
    pub model: ModelKind,
    /// The share of the GDL term, λ(t).
    pub lambda: f64,
    /// `(1−λ)·bce_weight·warm-up + λ·gdl_weight·GDL`, before this step's update.
    pub total: f32,
    pub warmup_loss: WarmupLoss,
    /// The warm-up term (BCE or CE) on its own.
    pub warmup: f32,
    /// The GDL term on its own (as the pipeline computes it, misuse included).
    pub gdl: f32,
    /// What the GDL was made of on this batch: I, P, G, w, Dice and contribution per channel, and
    /// the invariant monitor's verdict.
    pub anatomy: GdlAnatomy,
    /// Global L2 norm of all gradients before and after clipping (equal when clipping is off).
    pub grad_norm: f32,
    pub grad_norm_clipped: f32,
    /// Wall-clock time of the step, readback included, in milliseconds.
    pub millis: f64,
}

impl StepReport {
    /// One line for a terminal log: step, λ, the total and both terms, time.
    pub fn summary(&self) -> String {
        format!(
            "epoch {:>3}  step {:>5}  λ {:.2}  total {:.4}  {} {:.4}  GDL {:+.4}  {:.0} ms",
            self.epoch,
            self.step,
            self.lambda,
            self.total,
            self.warmup_loss.name(),
            self.warmup,
            self.gdl,
            self.millis
        )
    }
}

/// What the GDL was made of on one batch: the lab's anatomy table and the monitor's verdict.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GdlAnatomy {
    /// The value the pipeline reports.
    pub value: f32,
    /// One sentence when the value left [0, 1].
    pub explanation: Option<String>,
    /// Every broken assumption the monitor found, whether or not the value left [0, 1].
    pub violations: Vec<String>,
    pub monitor: GdlInputStats,
    /// The channels' names: class numbers, or "foreground" for a one-channel misuse.
    pub channels: Vec<String>,
    /// Per channel: soft Dice, weight w_c, intersection I, prediction sum P, target sum G, and
    /// the share of the fraction (2·w·I / denominator). Means over samples for the ratios and
    /// weights, sums over the batch for I, P and G.
    pub dice: Vec<f32>,
    pub weight: Vec<f32>,
    pub intersection: Vec<f32>,
    pub prediction: Vec<f32>,
    pub target: Vec<f32>,
    pub contribution: Vec<f32>,
}

/// The lab's readout and anatomy tables as CSV: one row per table and channel (`table` names
/// it: `correct`, or the cause), with the table's GDL value and each channel's I, P, G, w,
/// Dice and share; a channel is named by its class (`class_names`) when it is a class number.
pub fn anatomy_csv(tables: &[(&str, &GdlAnatomy)], class_names: &[String]) -> String {
    let mut csv =
        String::from("table,gdl,channel,intersection,prediction,target,weight,dice,contribution\n");
    let quoted = |text: &str| format!("\"{}\"", text.replace('"', "\"\""));
    for (table, anatomy) in tables {
        for (i, channel) in anatomy.channels.iter().enumerate() {
            let name = channel
                .parse::<usize>()
                .ok()
                .and_then(|class| class_names.get(class))
                .unwrap_or(channel);
            let value = |values: &Vec<f32>| values.get(i).copied().unwrap_or(f32::NAN);
            csv.push_str(&format!(
                "{},{},{},{},{},{},{},{},{}\n",
                quoted(table),
                anatomy.value,
                quoted(name),
                value(&anatomy.intersection),
                value(&anatomy.prediction),
                value(&anatomy.target),
                value(&anatomy.weight),
                value(&anatomy.dice),
                value(&anatomy.contribution)
            ));
        }
    }
    csv
}

/// The step history as CSV, one row per step; per-class columns are named by the GDL channel.
pub fn history_csv(history: &[StepReport]) -> String {
    let mut csv =
        String::from("step,epoch,model,lambda,total,warmup,gdl,grad_norm,grad_norm_clipped,millis");
    if let Some(first) = history.first() {
        for part in ["dice", "weight", "intersection", "prediction", "target"] {
            for channel in &first.anatomy.channels {
                csv.push_str(&format!(",{part}_{channel}"));
            }
        }
    }
    csv.push('\n');
    for r in history {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{:.3}",
            r.step,
            r.epoch,
            r.model.name(),
            r.lambda,
            r.total,
            r.warmup,
            r.gdl,
            r.grad_norm,
            r.grad_norm_clipped,
            r.millis
        ));
        let a = &r.anatomy;
        for row in [
            &a.dice,
            &a.weight,
            &a.intersection,
            &a.prediction,
            &a.target,
        ] {
            for value in row.iter() {
                csv.push_str(&format!(",{value}"));
            }
        }
        csv.push('\n');
    }
    csv
}

/// Whole-volume prediction by sliding windows, scored against the label map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Hard Dice per class, background included (1 when a class is absent from both).
    pub dice: Vec<f32>,
    /// Mean hard Dice over the foreground classes (over the regions, for a region net).
    pub mean_foreground_dice: f32,
    /// A region net's hard Dice per region (WT, TC, ET): BraTS's own score; empty for a class
    /// net.
    #[serde(default)]
    pub region_dice: Vec<f32>,
    /// The predicted class of each voxel, x-fastest like the volume.
    #[serde(skip)]
    pub labels: Vec<u8>,
    /// Softmax probabilities, class planes of x-fastest voxels, on the grid the net predicted
    /// (the engine's working grid: see `volume::preprocess::Preparation::probability_at`).
    #[serde(skip)]
    pub probabilities: Vec<f32>,
    /// Forward passes of one window each.
    pub windows: usize,
    pub millis: f64,
}

/// The held-out cases scored at one step: each predicted whole (sliding windows) by the net
/// that never trained on it, and scored in its own grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    pub step: usize,
    /// Each held-out case's name and hard Dice per class, background included.
    pub cases: Vec<(String, Vec<f32>)>,
    /// The Dice per class, averaged over the held-out cases.
    pub dice: Vec<f32>,
    /// Mean of `dice` over the foreground classes (over every region for a region net): what
    /// "best" is judged by.
    pub mean_foreground_dice: f32,
    /// True when `dice` is per region (WT, TC, ET: a region net, scored as BraTS scores) rather
    /// than per class.
    #[serde(default)]
    pub regions: bool,
}

impl ValidationReport {
    /// The report of `cases` (name, Dice per region: WT, TC, ET) at `step`.
    pub fn of_regions(step: usize, cases: Vec<(String, Vec<f32>)>) -> Self {
        let mut report = Self::of(step, cases);
        report.regions = true;
        report.mean_foreground_dice =
            report.dice.iter().sum::<f32>() / report.dice.len().max(1) as f32;
        report
    }

    /// The report of `cases` (name, Dice per class) at `step`.
    pub fn of(step: usize, cases: Vec<(String, Vec<f32>)>) -> Self {
        let classes = cases.first().map_or(0, |(_, dice)| dice.len());
        let dice: Vec<f32> = (0..classes)
            .map(|class| {
                cases.iter().map(|(_, dice)| dice[class]).sum::<f32>() / cases.len() as f32
            })
            .collect();
        let mean_foreground_dice = if dice.is_empty() {
            0.0
        } else {
            mean_foreground(&dice)
        };
        Self {
            step,
            cases,
            dice,
            mean_foreground_dice,
            regions: false,
        }
    }
}

/// The mean of the foreground classes' Dice (class 0, the background, left out).
pub fn mean_foreground(dice: &[f32]) -> f32 {
    dice[1..].iter().sum::<f32>() / (dice.len() - 1).max(1) as f32
}

/// Hard Dice `2|A∩B| / (|A|+|B|)` of each class between two label maps; 1 for a class that is
/// in neither.
pub fn hard_dice(predicted: &[u8], truth: &[u8], classes: usize) -> Vec<f32> {
    let mut both = vec![0usize; classes];
    let mut predicted_count = vec![0usize; classes];
    let mut truth_count = vec![0usize; classes];
    for (&p, &t) in predicted.iter().zip(truth) {
        predicted_count[p as usize] += 1;
        truth_count[t as usize] += 1;
        if p == t {
            both[p as usize] += 1;
        }
    }
    (0..classes)
        .map(|c| match predicted_count[c] + truth_count[c] {
            0 => 1.0,
            sum => 2.0 * both[c] as f32 / sum as f32,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_tables_as_csv_name_each_class() {
        let anatomy = GdlAnatomy {
            value: 0.25,
            channels: vec!["0".into(), "1".into()],
            dice: vec![0.9, 0.5],
            weight: vec![1.0, 2.0],
            intersection: vec![10.0, 3.0],
            prediction: vec![11.0, 6.0],
            target: vec![11.0, 6.0],
            contribution: vec![0.4, 0.6],
            ..GdlAnatomy::default()
        };
        let names = ["background".to_string(), "necrotic \"core\"".to_string()];
        let csv = anatomy_csv(&[("correct", &anatomy), ("0/255 mask", &anatomy)], &names);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(
            lines[2],
            "\"correct\",0.25,\"necrotic \"\"core\"\"\",3,6,6,2,0.5,0.6"
        );
        assert!(lines[3].starts_with("\"0/255 mask\",0.25,\"background\""));
    }

    #[test]
    fn hard_dice_counts_overlap_per_class() {
        let truth = [0, 0, 1, 1, 2, 2];
        let predicted = [0, 1, 1, 1, 0, 0];
        let dice = hard_dice(&predicted, &truth, 4);
        assert_eq!(dice[0], 2.0 * 1.0 / (3.0 + 2.0));
        assert_eq!(dice[1], 2.0 * 2.0 / (3.0 + 2.0));
        assert_eq!(dice[2], 0.0);
        assert_eq!(dice[3], 1.0);
    }
}
