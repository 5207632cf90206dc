//! One-click scenarios: each a link (the settings it sets) and two or three sentences on what
//! to watch. They run the small settings on the 32³ demo, so a scenario trains interactively on
//! any machine, and `tests/scenarios.rs` trains each one and checks that its text holds.

/// A scenario: a title, the link's settings, and what to watch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scenario {
    /// Stable key (`data-test`, the test's name for it).
    pub key: &'static str,
    pub title: &'static str,
    /// The settings it sets, on top of the defaults: a link's hash.
    pub settings: &'static str,
    /// What to watch, and why.
    pub text: &'static str,
}

/// The small settings every scenario starts from: 16³ patches of the 32³ demo, 10 steps an
/// epoch, predicted every 10 steps; the seed's Simple net unless the scenario names another.
pub const SMALL: &str = "patch=16&batch=1&steps_per_epoch=10&demo_size=32&eval_every=10";

/// [`SMALL`] with the Simple net and `extra`.
macro_rules! small {
    ($extra:literal) => {
        concat!(
            "patch=16&batch=1&steps_per_epoch=10&demo_size=32&eval_every=10&model=simple&",
            $extra
        )
    };
}

/// [`SMALL`] with `extra`, which names the net.
macro_rules! small_with_net {
    ($extra:literal) => {
        concat!(
            "patch=16&batch=1&steps_per_epoch=10&demo_size=32&eval_every=10&",
            $extra
        )
    };
}

pub const SCENARIOS: [Scenario; 22] = [
    Scenario {
        key: "seed_recipe",
        title: "The seed's recipe: BCE, then a hard switch to the GDL",
        settings: small!("warmup=bce&schedule=switch&w_type=square&ramp_epochs=0&epochs=6"),
        text: "BCE alone for 2 epochs (steps 1–20), then the GDL alone with 1/G² weights from \
               step 21: λ jumps from 0 to 1. Watch the total loss: it is ½·BCE up to step 20 \
               and the GDL from step 21, so it jumps up at the switch, to a GDL near 1 that the \
               warm-up never lowered.",
    },
    Scenario {
        key: "ramp_linear",
        title: "A linear ramp from CE to the GDL",
        settings: small!("schedule=linear&warmup_epochs=1&ramp_epochs=3&epochs=5"),
        text: "CE alone for 1 epoch, then λ(t) rises evenly from 0 to 1 over 3 epochs (steps \
               11–40). Watch the components chart: λ climbs in a straight line, and the total \
               hands over from the CE share to the GDL share as λ passes the point where they \
               are equal.",
    },
    Scenario {
        key: "ramp_cosine",
        title: "A cosine ramp from CE to the GDL",
        settings: small!("schedule=cosine&warmup_epochs=1&ramp_epochs=3&epochs=5"),
        text: "The same hand-over as the linear ramp, but λ(t) = ½(1 − cos πx) starts and ends \
               slowly and is steepest mid-way: it is below the linear ramp in the first half \
               (steps 11–25) and above it in the second.",
    },
    Scenario {
        key: "ramp_sigmoid",
        title: "A sigmoid ramp from CE to the GDL",
        settings: small!("schedule=sigmoid&warmup_epochs=1&ramp_epochs=3&epochs=5"),
        text: "λ(t) = exp(−5(1 − x)²) (Laine & Aila): it starts at 0.007 rather than 0 and stays \
               below 0.3 until half-way through the ramp (step 26), then rises steeply to 1. \
               Watch the CE keep a larger share than with the linear ramp from step 12 to 34; \
               the sigmoid overtakes the linear ramp at step 35.",
    },
    Scenario {
        key: "default_recipe",
        title: "The default recipe: a CE warm-up, a linear ramp, 1/G weights",
        settings: small!("schedule=linear&w_type=simple"),
        text: "CE alone for 2 epochs (the total is ½·CE until step 20), then a linear ramp to \
               the GDL over 4, with w_c = 1/G_c: a class with a hundredth of the background's \
               voxels weighs a hundred times more. The run to compare the others with: next to \
               the 1/G² run its w_c spread over half as many decades; next to the GDL-alone run, \
               watch the smallest class's soft Dice.",
    },
    Scenario {
        key: "weights_square",
        title: "1/G² class weights",
        settings: small!("w_type=square"),
        text: "w_c = 1/G_c²: a class with a hundredth of the background's voxels weighs ten \
               thousand times more. Watch the w_c chart (log scale): the weights spread over \
               exactly twice as many decades as with 1/G on the same patches, so the rarest \
               class's Dice all but decides the GDL. Compare with the default recipe.",
    },
    Scenario {
        key: "gdl_alone",
        title: "The GDL alone from step 1",
        settings: small!("schedule=switch&warmup_epochs=0&ramp_epochs=0"),
        text: "No warm-up: λ = 1 from the first step, so the total is the GDL from step 1 and \
               the CE is only watched. Watch the smallest class's soft Dice, then open the \
               default recipe (a CE warm-up) and compare the two runs on the Dice chart.",
    },
    Scenario {
        key: "clip_on",
        title: "Clipping at a high learning rate",
        settings: small!("lr=0.05&clip=0.05"),
        text: "A learning rate of 0.05 with a max norm of 0.05: the raw gradient norm is above \
               the dashed line at most steps (all of the first 30 in our runs). Watch the \
               gradient-norm chart: after clipping the norm never exceeds the max norm, however \
               large the raw norm gets, so no update is longer than that.",
    },
    Scenario {
        key: "clip_off",
        title: "No clipping at a high learning rate",
        settings: small!("lr=0.05&clip=0"),
        text: "The same learning rate without clipping: the two lines of the gradient-norm \
               chart coincide, and every step moves the weights by the whole raw gradient. \
               Compare with the clipped run.",
    },
    Scenario {
        key: "pretrain_widen",
        title: "Pretrain Simple, then widen it into Target",
        settings: small_with_net!("model=target&pretrain_epochs=2&epochs=4"),
        text: "Simple trains for 2 epochs, then Net2Net widens it into the Target net at step \
               21 with the same outputs. Watch the total loss at the widening: it goes on from \
               where Simple left it, well below where a Target net from scratch starts.",
    },
    Scenario {
        key: "target_scratch",
        title: "Target from scratch",
        settings: small_with_net!("model=target&epochs=4"),
        text: "The Target net from a random start, for comparison with the widened one: its \
               loss starts high again at step 1.",
    },
    Scenario {
        key: "cause_logits",
        title: "Negative GDL? Logits instead of probabilities",
        settings: small!("misuse=logits&epochs=5"),
        text: "The GDL is fed raw logits, not softmax probabilities. Watch the GDL in the \
               components chart leave [0, 1] within the first 50 steps, once the logits grow \
               beyond [0, 1]: a valid GDL never does.",
    },
    Scenario {
        key: "cause_label_map",
        title: "Negative GDL? The raw label map as target",
        settings: small!("misuse=label_map_as_target&epochs=15"),
        text: "The target is the label map itself (0, 1, 2, 3) instead of one-hot masks. The \
               GDL stays inside [0, 1] while the net is unsure and goes below 0 once it predicts \
               the labelled voxels confidently: watch it cross 0 within 150 steps (near step 80 \
               in our runs).",
    },
    Scenario {
        key: "cause_brats",
        title: "Negative GDL? BraTS labels {0, 1, 2, 4} not remapped",
        settings: small!("misuse=brats_labels&epochs=15"),
        text: "The target holds BraTS's labels, 4 included, as values. Like the raw label map, \
               the GDL goes below 0 only once the net is confident: watch it cross 0 within 150 \
               steps (near step 75 in our runs).",
    },
    Scenario {
        key: "cause_smooth",
        title: "Negative GDL? smooth_nr above smooth_dr",
        settings: small!("misuse=smooth_nr_above_dr&epochs=15"),
        text: "smooth_nr = 1 with smooth_dr ≈ 0 breaks an assumption, yet here the GDL stays in \
               [0, 1] for all 150 steps: it leaves only when the weighted miss Σw·(P + G − 2I) \
               falls below smooth_nr − smooth_dr, which this net does not reach. The lab names \
               the broken assumption all the same.",
    },
    Scenario {
        key: "cause_mask255",
        title: "Negative GDL? A 0/255 mask as target",
        settings: small!("misuse=mask255&epochs=5"),
        text: "The target is a mask saved as 0/255 instead of 0/1. Watch the GDL dip below 0 \
               at step 1, come back while the net is unsure, and stay below 0 from about step \
               35: with 255 in the target, 2I ≤ P + G no longer holds once the net predicts \
               the foreground.",
    },
    Scenario {
        key: "cause_negative_weight",
        title: "Negative GDL? A negative class weight",
        settings: small!("misuse=negative_weight&epochs=5"),
        text: "One class gets a negative weight (as an overflowed or hand-edited weight would). \
               Watch the GDL leave [0, 1] from the first step (above 1 here): the weighted sums \
               no longer bound each other.",
    },
    Scenario {
        key: "cause_negated_dice",
        title: "Negative GDL? −Dice as the loss",
        settings: small!("misuse=negated_dice&epochs=5"),
        text: "nnU-Net minimises −Dice, which lies in [−1, 0] by design: here every input is \
               valid and the value is negative from step 1. Watch the GDL curve sit below 0 and \
               fall as the net learns.",
    },
    Scenario {
        key: "regions",
        title: "BraTS's regions: WT, TC and ET, a sigmoid each",
        settings: small!("targets=regions&warmup=bce&epochs=15"),
        text: "The label map becomes BraTS's three overlapping regions, as BraTS scores them: \
               WT (every tumour label), TC (necrotic core and enhancing tumour) and ET, three \
               outputs with a sigmoid each; BCE on the regions, then the GDL over them. A voxel \
               of the enhancing tumour counts in all three. Watch the GDL fall below 0.6 within \
               150 steps (0.28 at best in our runs) and the Dice under the slices per region: \
               the whole tumour is learned first.",
    },
    Scenario {
        key: "cause_softmax_regions",
        title: "A softmax over overlapping regions",
        settings: small!(
            "targets=regions&warmup=bce&misuse=softmax_over_regions&schedule=switch&warmup_epochs=0&epochs=15"
        ),
        text: "The same three regions through a softmax, the GDL alone from step 1. A softmax \
               sums to 1 at every voxel, but a voxel of the enhancing tumour should be 1 in all \
               three regions and a background voxel 0 in all: the loss has a floor above 0. \
               Here the net escapes into the whole-tumour channel everywhere: watch the GDL \
               stall above 0.75 at every step while the gradient norm falls below 0.001 by step \
               50; the lab names the cause at every step.",
    },
    Scenario {
        key: "cause_fp16",
        title: "The GDL's sums in half precision (fp16)",
        settings: small!("misuse=fp16_sums&w_type=square&schedule=switch&warmup_epochs=0&epochs=5"),
        text: "The GDL's sums and weights rounded to half precision (fp16), as a mixed-precision \
               run computes them when the loss is not cast to float32. With 1/G² weights, G² \
               passes fp16's largest value, 65 504, once a class has more than 255 voxels in the \
               patch, and 1/∞ = 0. Watch the lab's table: the background's weight is 0 at every \
               step, and the oedema's whenever it fills more than 255 voxels of the patch; those \
               classes drop out of the loss. On the page's 32³ patches every present class is \
               that large and the value reads 0.000 at step 0.",
    },
    Scenario {
        key: "cause_one_channel",
        title: "One output channel through a softmax",
        settings: small!("misuse=one_channel&epochs=5"),
        text: "The net's output narrowed to one channel through a softmax, as a binary net built \
               with one output and a softmax: the softmax of one channel is 1 at every voxel. \
               Watch the components chart: the CE is 0 at every step and the gradient norm 0, so \
               nothing is learned, and the GDL moves only with the patch (1 − 2G/(N + G) for G \
               tumour voxels of N). One channel needs a sigmoid and BCE.",
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::PageState;

    #[test]
    fn every_scenario_is_a_valid_link_with_the_small_settings() {
        for scenario in SCENARIOS {
            let state = PageState::from_hash(scenario.settings)
                .unwrap_or_else(|e| panic!("{}: {e}", scenario.key));
            assert!(scenario.settings.starts_with(SMALL), "{}", scenario.key);
            assert_eq!(state.page.demo_size, 32, "{}", scenario.key);
        }
        // Two scenarios with the same settings would show one text for both.
        for (i, a) in SCENARIOS.iter().enumerate() {
            for b in &SCENARIOS[i + 1..] {
                assert_ne!(
                    PageState::from_hash(a.settings).ok(),
                    PageState::from_hash(b.settings).ok(),
                    "{} and {} set the same settings",
                    a.key,
                    b.key
                );
            }
        }
        let mut keys: Vec<_> = SCENARIOS.iter().map(|s| s.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), SCENARIOS.len(), "keys are unique");
    }
}
