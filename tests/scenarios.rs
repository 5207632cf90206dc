//! Every scenario's text holds on the demo scan: each one is trained with its own link's
//! settings (as the page would, on flex) for as many steps as its text talks about, and the
//! effect it tells the teacher to watch is checked in the step reports.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::HashMap;

use gdl_lab::backend::ComputeDevice;
use gdl_lab::report::StepReport;
use gdl_lab::train::TrainingSession;
use gdl_lab::view::PageState;
use gdl_lab::view::scenarios::SCENARIOS;
use gdl_lab::volume::demo_scan;

/// The scenario's steps (all of its epochs, or `limit` if fewer).
fn train(key: &str, limit: usize) -> Vec<StepReport> {
    let scenario = SCENARIOS.iter().find(|s| s.key == key).expect("a scenario");
    let state = PageState::from_hash(scenario.settings).expect("a valid link");
    let scan = demo_scan(state.page.demo_size);
    let device = ComputeDevice::flex(None);
    let mut session = TrainingSession::on(state.config.clone(), &scan.volume, &device)
        .unwrap_or_else(|e| panic!("{key}: {e}"));
    let steps = state.config.total_steps().min(limit);
    (0..steps)
        .map(|_| pollster::block_on(session.step()).unwrap_or_else(|e| panic!("{key}: {e}")))
        .collect()
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-5 * a.abs().max(b.abs()).max(1.0)
}

fn outside(r: &StepReport) -> bool {
    !(0.0..=1.0).contains(&r.gdl)
}

#[test]
fn the_seed_recipe_switches_from_half_bce_to_the_gdl_at_step_21_and_the_loss_jumps() {
    let run = train("seed_recipe", 25);
    for r in &run[..20] {
        assert_eq!(r.lambda, 0.0, "step {}", r.step);
        assert!(close(r.total, 0.5 * r.warmup), "step {}: {r:?}", r.step);
    }
    for r in &run[20..] {
        assert_eq!(r.lambda, 1.0, "step {}", r.step);
        assert!(close(r.total, r.gdl), "step {}", r.step);
    }
    let (before, after) = (&run[19], &run[20]);
    assert!(
        after.total - before.total > 0.3 && after.gdl > 0.8,
        "no jump at the switch: {} → {} (GDL {})",
        before.total,
        after.total,
        after.gdl
    );
}

/// λ of each ramp scenario, by step.
fn lambdas(key: &str) -> Vec<f64> {
    train(key, 45).iter().map(|r| r.lambda).collect()
}

#[test]
fn the_ramps_hand_over_from_ce_to_the_gdl_as_their_texts_say() {
    let linear_run = train("ramp_linear", 45);
    let linear: Vec<f64> = linear_run.iter().map(|r| r.lambda).collect();
    let (cosine, sigmoid) = (lambdas("ramp_cosine"), lambdas("ramp_sigmoid"));
    // CE alone for the first epoch; λ = 1 after step 40.
    for ramp in [&linear, &cosine] {
        assert!(ramp[..10].iter().all(|&l| l == 0.0));
        assert!(ramp[40..].iter().all(|&l| l == 1.0), "{ramp:?}");
        assert!(ramp.windows(2).all(|w| w[1] >= w[0]));
    }
    // Linear: even steps.
    let rises: Vec<f64> = linear[10..40].windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        rises.iter().all(|d| (d - rises[0]).abs() < 1e-9),
        "{rises:?}"
    );
    // The total hands over from the CE share to the GDL share during the ramp.
    let ce_share = |r: &StepReport| (1.0 - r.lambda) * 0.5 * r.warmup as f64;
    let gdl_share = |r: &StepReport| r.lambda * r.gdl as f64;
    let crossing = (10..40).find(|&i| {
        ce_share(&linear_run[i]) > gdl_share(&linear_run[i])
            && ce_share(&linear_run[i + 1]) <= gdl_share(&linear_run[i + 1])
    });
    assert!(crossing.is_some(), "the shares never cross during the ramp");
    // Cosine: below the linear ramp in its first half, above it in its second.
    for i in 10..40 {
        if linear[i] > 0.0 && linear[i] < 0.5 {
            assert!(cosine[i] < linear[i], "step {}", i + 1);
        }
        if linear[i] > 0.5 && linear[i] < 1.0 {
            assert!(cosine[i] > linear[i], "step {}", i + 1);
        }
    }
    // Sigmoid: 0.007 at the start of the ramp, below 0.3 until step 26, below the linear ramp
    // from step 12 to 34 and above it from step 35.
    let first = sigmoid.iter().find(|&&l| l > 0.0).copied().unwrap();
    assert!((first - (-5.0f64).exp()).abs() < 0.01, "{first}");
    assert!(sigmoid[..26].iter().all(|&l| l < 0.3), "{sigmoid:?}");
    assert!((11..34).all(|i| sigmoid[i] < linear[i]), "{sigmoid:?}");
    assert!((34..40).all(|i| sigmoid[i] > linear[i]), "{sigmoid:?}");
    assert!(sigmoid[40..].iter().all(|&l| l == 1.0));
}

/// log10(max w / min w) over the channels of one step.
fn spread(r: &StepReport) -> f64 {
    let w = &r.anatomy.weight;
    let max = w.iter().cloned().fold(f32::MIN, f32::max) as f64;
    let min = w.iter().cloned().fold(f32::MAX, f32::min) as f64;
    (max / min).log10()
}

#[test]
fn square_weights_spread_over_twice_the_decades_of_simple_ones_on_the_same_patches() {
    let (square, simple) = (train("weights_square", 10), train("default_recipe", 10));
    for (sq, si) in square.iter().zip(&simple) {
        assert!(
            spread(si) > 1.0,
            "step {}: 1/G spread {}",
            si.step,
            spread(si)
        );
        let ratio = spread(sq) / spread(si);
        assert!(
            (ratio - 2.0).abs() < 1e-3,
            "step {}: ratio {ratio}",
            sq.step
        );
    }
}

#[test]
fn gdl_alone_is_the_total_from_step_1_and_a_ce_warm_up_is_half_ce() {
    for r in train("gdl_alone", 10) {
        assert_eq!(r.lambda, 1.0);
        assert!(close(r.total, r.gdl), "step {}", r.step);
    }
    for r in train("default_recipe", 20) {
        assert_eq!(r.lambda, 0.0);
        assert!(close(r.total, 0.5 * r.warmup), "step {}", r.step);
    }
}

#[test]
fn clipping_bites_at_most_steps_and_caps_the_norm_at_max_norm() {
    // One spike above a max norm of 1 (step 2 in our runs) was too rare to rely on: flex's
    // trajectory moves with threads and with tests running beside it. A max norm of 0.05 is
    // passed at every one of the first 30 steps in our runs; two thirds is required.
    let clipped = train("clip_on", 30);
    let above = clipped.iter().filter(|r| r.grad_norm > 0.05).count();
    assert!(
        above >= 20,
        "the raw norm passed 0.05 at only {above} of 30 steps"
    );
    assert!(
        clipped
            .iter()
            .all(|r| r.grad_norm_clipped <= 0.05 * (1.0 + 1e-4))
    );
    for r in train("clip_off", 30) {
        assert_eq!(r.grad_norm, r.grad_norm_clipped, "step {}", r.step);
    }
}

#[test]
fn widening_keeps_the_loss_well_below_a_target_net_from_scratch() {
    let widened = train("pretrain_widen", 22);
    let scratch = train("target_scratch", 1);
    let kinds: Vec<_> = widened.iter().map(|r| r.model.name()).collect();
    assert!(kinds[..20].iter().all(|&k| k == "simple"), "{kinds:?}");
    assert_eq!(kinds[20], "target");
    let at_widening = widened[20].total;
    assert!(
        at_widening < 0.7 * scratch[0].total,
        "step 21 {at_widening} vs a fresh Target's {}",
        scratch[0].total
    );
    assert!(at_widening < 0.7 * widened[0].total);
}

#[test]
fn each_cause_takes_the_gdl_out_of_0_1_when_its_text_says() {
    let first_outside = |key: &str, limit: usize| {
        let run = train(key, limit);
        (run.iter().find(|r| outside(r)).map(|r| r.step), run)
    };
    let mut seen = HashMap::new();
    for (key, within) in [
        ("cause_logits", 50),
        ("cause_label_map", 150),
        ("cause_brats", 150),
        ("cause_negative_weight", 1),
    ] {
        let (step, _) = first_outside(key, within);
        seen.insert(key, step);
        assert!(step.is_some(), "{key} stayed in [0, 1] for {within} steps");
    }
    // The 0/255 mask: below 0 at step 1, and for good from about step 35.
    let (step, mask) = first_outside("cause_mask255", 50);
    assert_eq!(step, Some(1));
    // (Our runs: below 0 at every step from 34 on; flex's trajectory moves with the machine,
    // so 8 of the 10 steps 41–50 are required.)
    let late: Vec<f32> = mask[40..].iter().map(|r| r.gdl).collect();
    assert!(late.iter().filter(|&&g| g < 0.0).count() >= 8, "{late:?}");
    // −Dice: below 0 from step 1, falling as the net learns.
    let negated = train("cause_negated_dice", 50);
    assert!(negated.iter().all(|r| r.gdl < 0.0));
    assert!(negated.last().unwrap().gdl < negated[0].gdl);
    // smooth_nr > smooth_dr: inside for all 150 steps on this demo, as its text says.
    let (step, _) = first_outside("cause_smooth", 150);
    assert_eq!(step, None);
    println!("first step outside [0, 1]: {seen:?}");
}

/// The whole of a scenario's run, and its whole-volume prediction at the end.
fn train_and_predict(key: &str) -> (Vec<StepReport>, gdl_lab::report::Evaluation) {
    let scenario = SCENARIOS.iter().find(|s| s.key == key).expect("a scenario");
    let state = PageState::from_hash(scenario.settings).expect("a valid link");
    let scan = demo_scan(state.page.demo_size);
    let mut session = TrainingSession::on(
        state.config.clone(),
        &scan.volume,
        &ComputeDevice::flex(None),
    )
    .unwrap_or_else(|e| panic!("{key}: {e}"));
    let run = (0..state.config.total_steps())
        .map(|_| pollster::block_on(session.step()).unwrap_or_else(|e| panic!("{key}: {e}")))
        .collect();
    (run, pollster::block_on(session.evaluate()).unwrap())
}

#[test]
fn region_targets_learn_with_sigmoids_and_a_softmax_over_them_stalls() {
    use gdl_lab::loss::Misuse;
    let (regions, evaluation) = train_and_predict("regions");
    assert!(
        regions
            .iter()
            .all(|r| r.anatomy.channels == ["WT", "TC", "ET"])
    );
    assert!(
        regions
            .iter()
            .all(|r| r.anatomy.monitor.causes().is_empty())
    );
    let best = regions.iter().map(|r| r.gdl).fold(f32::MAX, f32::min);
    println!(
        "regions through sigmoids: lowest GDL {best:.3}; region Dice on the scan {:?}",
        evaluation.region_dice
    );
    assert!(best < 0.6, "the region GDL never fell below 0.6: {best}");
    // Scored as BraTS scores: per region; the whole tumour learned (0.80 in our runs).
    assert_eq!(evaluation.region_dice.len(), 3);
    assert!(evaluation.region_dice[0] > 0.5, "{evaluation:?}");

    let softmax = train("cause_softmax_regions", 150);
    let range = |run: &[StepReport]| {
        run.iter().fold((f32::MAX, f32::MIN), |(lo, hi), r| {
            (lo.min(r.gdl), hi.max(r.gdl))
        })
    };
    println!(
        "regions through a softmax: GDL from {:.3} to {:.3}",
        range(&softmax).0,
        range(&softmax).1
    );
    for r in &softmax {
        assert!(
            r.gdl > 0.75,
            "step {}: the softmax GDL fell to {}",
            r.step,
            r.gdl
        );
        assert_eq!(r.anatomy.monitor.causes(), [Misuse::SoftmaxOverRegions]);
    }
    assert!(
        softmax[49..].iter().all(|r| r.grad_norm < 1e-3),
        "the gradient did not vanish by step 50: {:?}",
        softmax[49..]
            .iter()
            .map(|r| r.grad_norm)
            .collect::<Vec<_>>()
    );
}

#[test]
fn in_fp16_every_class_above_255_voxels_weighs_0_as_the_text_says() {
    use gdl_lab::loss::Misuse;
    let run = train("cause_fp16", 50);
    let mut oedema_dropped = 0;
    for r in &run {
        let (w, g) = (&r.anatomy.weight, &r.anatomy.target);
        assert_eq!(w[0], 0.0, "step {}: background weight {}", r.step, w[0]);
        for class in 1..4 {
            if g[class] > 255.0 {
                assert_eq!(
                    w[class], 0.0,
                    "step {}: class {class}, G {}",
                    r.step, g[class]
                );
            } else if g[class] > 0.0 {
                assert!(
                    w[class] > 0.0,
                    "step {}: class {class}, G {}",
                    r.step,
                    g[class]
                );
            }
        }
        oedema_dropped += usize::from(g[2] > 255.0);
        assert_eq!(
            r.anatomy.monitor.causes(),
            [Misuse::Fp16Sums],
            "step {}",
            r.step
        );
    }
    // "Whenever it fills more than 255 voxels": most steps (30 of 50 in our runs).
    assert!(
        oedema_dropped >= 10,
        "the oedema exceeded 255 voxels at {oedema_dropped} steps"
    );
}

#[test]
fn one_output_channel_has_zero_ce_zero_gradient_and_a_gdl_set_by_the_patch() {
    use gdl_lab::loss::Misuse;
    let run = train("cause_one_channel", 50);
    let voxels = 16f32.powi(3);
    for r in &run {
        assert!(r.warmup.abs() < 1e-6, "step {}: CE {}", r.step, r.warmup);
        assert_eq!(r.grad_norm, 0.0, "step {}", r.step);
        let g = r.anatomy.target[0];
        let expected = 1.0 - (2.0 * g + 1e-5) / (voxels + g + 1e-5);
        assert!(
            (r.gdl - expected).abs() < 1e-4,
            "step {}: GDL {} where 1 − 2G/(N + G) = {expected}",
            r.step,
            r.gdl
        );
        assert_eq!(r.anatomy.monitor.causes(), [Misuse::OneChannel]);
    }
}
