//! The lab's reading of a class absent from the batch (G = 0): its weight 1/G or 1/G² is
//! infinite, and its Dice is 0/0, which libraries settle by convention (MONAI #371, #4656,
//! #4510, #7504). Shown side by side so that a chart's reading can be told from its convention.

use crate::report::GdlAnatomy;

/// One channel of the batch with no target voxel.
#[derive(Clone, Debug, PartialEq)]
pub struct AbsentClass {
    /// The channel's name (a class number, or a region).
    pub channel: String,
    /// The weight it got: MONAI's replacement, the largest finite weight of its sample.
    pub weight: f32,
    /// The largest weight of the present channels (what the replacement should equal).
    pub largest_present_weight: f32,
    /// Its predicted mass P = Σp on the batch.
    pub predicted: f32,
    /// Its soft Dice with the smoothing, (2·0 + smooth_nr)/(P + 0 + smooth_dr) for each sample,
    /// averaged over the batch.
    pub smoothed_dice: f32,
}

impl AbsentClass {
    /// The three conventions for the Dice 0/0 of an absent class, with who uses each: `(value,
    /// where)`.
    pub fn conventions(&self) -> [(&'static str, &'static str); 3] {
        [
            (
                "NaN",
                "undefined and left out of the mean: MONAI's DiceMetric with ignore_empty=True \
                 (its default)",
            ),
            (
                "0",
                "a miss: MONAI's DiceMetric with ignore_empty=False when anything is predicted \
                 there, and any mean that counts 0/0 as 0",
            ),
            (
                "1",
                "a success when nothing is predicted either: MONAI's DiceMetric with \
                 ignore_empty=False on an empty prediction, and gdl-lab's hard Dice under the \
                 slices",
            ),
        ]
    }

    /// One sentence on this batch: the weight replacement and what the soft Dice reads.
    pub fn sentence(&self) -> String {
        format!(
            "{} has no voxel in this batch (G = 0), so its weight 1/G is infinite; MONAI, and \
             gdl-lab with it, give it the largest finite weight of its sample instead: w = \
             {:.3e} (largest present weight {:.3e}). Its Dice is 0/0. With the smoothing each \
             sample's soft Dice reads (0 + smooth_nr)/(P + smooth_dr), here {:.4} on average for \
             a predicted mass P = {:.1} over the batch: near 0 once anything is predicted there, \
             1 only when nothing is.",
            self.channel,
            self.weight,
            self.largest_present_weight,
            self.smoothed_dice,
            self.predicted
        )
    }
}

/// The channels of `anatomy` absent from its batch (G = 0 summed over the batch), named by
/// `class_names` when a channel is a class number.
pub fn absent_classes(anatomy: &GdlAnatomy, class_names: &[String]) -> Vec<AbsentClass> {
    let present_max = anatomy
        .target
        .iter()
        .zip(&anatomy.weight)
        .filter(|(g, _)| **g > 0.0)
        .map(|(_, w)| *w)
        .fold(f32::NAN, f32::max);
    anatomy
        .target
        .iter()
        .enumerate()
        .filter(|(_, g)| **g == 0.0)
        .map(|(index, _)| {
            let channel = anatomy.channels.get(index).cloned().unwrap_or_default();
            let name = channel
                .parse::<usize>()
                .ok()
                .and_then(|class| class_names.get(class))
                .map_or(channel.clone(), |name| format!("Class {channel} ({name})"));
            AbsentClass {
                channel: name,
                weight: anatomy.weight.get(index).copied().unwrap_or(f32::NAN),
                largest_present_weight: present_max,
                predicted: anatomy.prediction.get(index).copied().unwrap_or(f32::NAN),
                smoothed_dice: anatomy.dice.get(index).copied().unwrap_or(f32::NAN),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absent_class_is_found_named_and_its_replacement_weight_shown() {
        let anatomy = GdlAnatomy {
            channels: vec!["0".into(), "1".into(), "2".into()],
            target: vec![4000.0, 0.0, 96.0],
            prediction: vec![3990.0, 12.5, 93.5],
            weight: vec![2.5e-4, 1.0417e-2, 1.0417e-2],
            dice: vec![0.99, 7.9e-7, 0.8],
            ..GdlAnatomy::default()
        };
        let names = ["background".to_string(), "necrotic core".to_string()];
        let absent = absent_classes(&anatomy, &names);
        assert_eq!(absent.len(), 1);
        let class = &absent[0];
        assert_eq!(class.channel, "Class 1 (necrotic core)");
        assert_eq!(class.weight, class.largest_present_weight);
        assert!(
            class.sentence().contains("w = 1.042e-2"),
            "{}",
            class.sentence()
        );
        let values: Vec<&str> = class.conventions().iter().map(|c| c.0).collect();
        assert_eq!(values, ["NaN", "0", "1"]);
    }
}
