//! The tuning pass: before the first step on a GPU, time each of a short list of kernel choices
//! ([`KernelChoice::candidates`]) for a few steps of the net, patch and batch about to train,
//! and train with the fastest whose first two steps agree with the CPU's from the same weights
//! and patch (the probe's rule, [`agreement`]).
//!
//! Why measure rather than pick by adapter: the defaults were chosen on lavapipe and
//! SwiftShader, and GPUs differ in register files, subgroup widths and memory. Why by hand
//! rather than CubeCL's autotune: in the browser it is off, because on SwiftShader it picked
//! kernels that trained on garbage; here every candidate must agree with the CPU before it can
//! win.

use std::sync::Arc;

use web_time::Instant;

use crate::backend::ComputeDevice;
use crate::model::kernel_choice::KernelChoice;
use crate::train::TrainingConfig;
use crate::volume::LabelledVolume;

use super::probe::{StepCounts, Timed, agreement, describe_settings, time_steps};
use super::protocol::{KeptTuning, TuningKey};

/// The pass's budget: a candidate (or the second round) starts only when it fits, at the
/// average candidate's time so far (the default is always timed). A real GPU times all of them
/// in a second or two; a software adapter may time only the default (SwiftShader: 11 s for
/// Target 2 × 16³).
pub const TUNING_BUDGET_S: f64 = 20.0;

/// The most a choice of kernels is expected to gain over the defaults (bench/tiles.py's sweeps
/// on lavapipe spread 0.87–1.40×; a GPU's may spread more). Where the defaults leave the GPU
/// slower than the CPU by more than this, no choice would make it win the probe, so the pass
/// is not run.
pub const MOST_TUNING_GAINS: f64 = 3.0;

/// What each candidate runs: two untimed steps (the kernels' compilation, and the device's
/// first allocations, which on lavapipe made the first candidate's next steps 4× slow), then the
/// median of at least three, and of more (up to 20) until they add up to half a second: medians
/// of three 40 ms steps (Simple 16³ on lavapipe) differed by 25 % for the same kernels. The first
/// two steps are the ones checked against the CPU.
pub const CANDIDATE_STEPS: StepCounts = StepCounts {
    untimed: 2,
    timed: 3,
    at_least_ms: 500.0,
    most: 20,
    give_up_above_ms: f64::INFINITY,
};

/// A candidate whose second step (compiled by then) takes this many times the fastest median
/// so far is not timed further: it cannot win, and on a software adapter one such candidate
/// took 40 s (im2col + matmul, U-Net 32³ on lavapipe, 6 s a step).
pub const GIVE_UP_FACTOR: f64 = 2.0;

/// How much faster than the defaults another choice must be to replace them: steps of the same
/// kernels vary by ±25 % at small sizes on a busy machine (Simple 16³ on lavapipe: 30–48 ms),
/// and the defaults are the kernels every test checks most.
pub const MIN_GAIN: f64 = 1.1;

/// One candidate's outcome: its median step time, or why it cannot be used.
#[derive(Clone, Debug, PartialEq)]
pub struct Tried {
    pub choice: KernelChoice,
    pub outcome: Result<f64, String>,
    /// Its median step time, also when its numbers were refused.
    pub timed_ms: Option<f64>,
    /// How long its steps took in all, compilation included.
    pub seconds: f64,
}

/// What a pass measured and chose.
#[derive(Clone, Debug, PartialEq)]
pub struct Tuning {
    /// Every candidate timed, in order (the default first).
    pub tried: Vec<Tried>,
    /// Candidates left untimed when the budget ran out.
    pub untimed: usize,
    /// The pass's duration.
    pub seconds: f64,
    /// The settings the candidates were timed at, e.g. "unet, 2 × 32³".
    pub timed_at: String,
    /// The CPU's step time, when the pass stopped after the defaults because they left the GPU
    /// beyond [`MOST_TUNING_GAINS`] of it.
    pub beyond_reach_of: Option<f64>,
}

impl Tuning {
    /// The fastest candidate that agreed with the CPU (the earlier on a tie), with its step
    /// time.
    fn fastest(&self) -> Option<(KernelChoice, f64)> {
        self.tried
            .iter()
            .filter_map(|tried| tried.outcome.as_ref().ok().map(|ms| (tried.choice, *ms)))
            .fold(
                None,
                |best: Option<(KernelChoice, f64)>, (choice, ms)| match best {
                    Some((_, best_ms)) if best_ms <= ms => best,
                    _ => Some((choice, ms)),
                },
            )
    }

    /// The kernels to train with and their step time: the fastest candidate that agreed with
    /// the CPU, but the defaults (when they agreed) unless it beats them by [`MIN_GAIN`];
    /// `None` when nothing agreed.
    pub fn chosen(&self) -> Option<(KernelChoice, f64)> {
        let fastest = self.fastest()?;
        match self.default_ms() {
            Some(default_ms) if fastest.1 * MIN_GAIN > default_ms => {
                Some((KernelChoice::default(), default_ms))
            }
            _ => Some(fastest),
        }
    }

    /// The default's step time, when it agreed.
    pub fn default_ms(&self) -> Option<f64> {
        self.tried
            .iter()
            .find(|tried| tried.choice == KernelChoice::default())
            .and_then(|tried| tried.outcome.as_ref().ok().copied())
    }

    /// What the pass found: "tiles 16×8, 1.3× faster than the default (31 against 40
    /// ms/step)", or that the defaults were fastest, or that nothing agreed.
    pub fn found(&self) -> String {
        match (self.chosen(), self.default_ms()) {
            (Some((choice, ms)), _) if choice == KernelChoice::default() => {
                format!("the default kernels were the fastest ({ms:.0} ms/step)")
            }
            (Some((choice, ms)), Some(default_ms)) => format!(
                "{}, {:.1}× faster than the default ({ms:.0} against {default_ms:.0} ms/step)",
                choice.describe(),
                default_ms / ms
            ),
            (Some((choice, ms)), None) => format!(
                "{} ({ms:.0} ms/step; the default kernels' numbers differed from the CPU's)",
                choice.describe()
            ),
            (None, _) => "no candidate's numbers agreed with the CPU's".into(),
        }
    }

    /// The device panel's sentence: "tuned in 6.2 s (7 candidates at unet, 2 × 32³): …", with
    /// the candidates refused for differing from the CPU and those the budget left out.
    pub fn sentence(&self) -> String {
        if let (Some(cpu_ms), Some(default_ms)) = (self.beyond_reach_of, self.default_ms()) {
            return format!(
                "not tuned: with the default kernels a step took {default_ms:.0} ms, more than \
                 {MOST_TUNING_GAINS:.0}× the CPU's {cpu_ms:.0}, beyond what a choice of kernels \
                 has gained"
            );
        }
        let mut sentence = format!(
            "tuned in {:.1} s ({} candidate{} at {}{}): {}",
            self.seconds,
            self.tried.len(),
            if self.tried.len() == 1 { "" } else { "s" },
            self.timed_at,
            if self.untimed > 0 {
                format!(
                    "; {} more left untimed by the {TUNING_BUDGET_S:.0} s budget",
                    self.untimed
                )
            } else {
                String::new()
            },
            self.found()
        );
        let refused: Vec<String> = self
            .tried
            .iter()
            .filter_map(|tried| {
                tried
                    .outcome
                    .as_ref()
                    .err()
                    .map(|why| format!("{} ({why})", tried.choice.describe()))
            })
            .collect();
        if !refused.is_empty() {
            sentence.push_str(&format!(" · refused: {}", refused.join("; ")));
        }
        sentence
    }

    /// The choice to keep for `key`, when the pass chose one.
    pub fn to_keep(&self, key: TuningKey) -> Option<KeptTuning> {
        self.chosen().map(|(choice, _)| KeptTuning {
            key,
            build: super::protocol::build().to_string(),
            kernels: choice.to_string(),
            found: self.found(),
        })
    }
}

/// What a choice is kept for: `gpu`'s adapter (name and driver) and `config`'s net, patch and
/// batch.
pub fn tuning_key(gpu: &ComputeDevice, config: &TrainingConfig) -> TuningKey {
    let adapter = &gpu.adapter;
    TuningKey {
        adapter: if adapter.architecture.is_empty() {
            adapter.name.clone()
        } else {
            format!("{} [{}]", adapter.name, adapter.architecture)
        },
        model: config.model.name().to_string(),
        patch: config.patch,
        batch: config.batch,
    }
}

/// What every candidate is timed at and checked against: the settings, the volume, and the
/// CPU's steps at them (its starting weights and first two steps).
pub struct Reference<'a> {
    pub config: &'a TrainingConfig,
    pub volume: &'a Arc<LabelledVolume>,
    pub cpu: &'a Timed,
}

/// Times each candidate on `gpu` at the reference's settings, each from the CPU's starting
/// weights and checked against the CPU's first two steps (the probe's [`agreement`]); the
/// first candidate is always timed, the others while the pass is within `budget_s`. With
/// `cpu_ms`, the pass stops after the first candidate when that leaves the GPU more than
/// [`MOST_TUNING_GAINS`] times slower than the CPU. `timing(index)` is told before each
/// candidate, and `timing(candidates.len())` before the second round. Leaves the kernels set to the last candidate's: the caller applies the choice.
pub async fn tune(
    reference: &Reference<'_>,
    gpu: &ComputeDevice,
    candidates: &[KernelChoice],
    budget_s: f64,
    cpu_ms: Option<f64>,
    timing: &mut dyn FnMut(usize),
) -> Tuning {
    let Reference {
        config,
        volume,
        cpu,
    } = *reference;
    let started = Instant::now();
    let time_one = async |choice: KernelChoice, fastest_ms: Option<f64>| {
        let candidate_started = Instant::now();
        choice.apply();
        let steps = StepCounts {
            give_up_above_ms: fastest_ms.map_or(f64::INFINITY, |ms| GIVE_UP_FACTOR * ms),
            ..CANDIDATE_STEPS
        };
        let timed = time_steps(config, volume, gpu, Some(&cpu.initial), None, steps).await;
        let outcome = match &timed {
            Ok(timed) => agreement(&cpu.first_steps, &timed.first_steps).map(|()| timed.median_ms),
            Err(error) => Err(error.to_string()),
        };
        Tried {
            choice,
            outcome,
            timed_ms: timed.ok().map(|timed| timed.median_ms),
            seconds: candidate_started.elapsed().as_secs_f64(),
        }
    };
    let mut tuning = Tuning {
        tried: Vec::with_capacity(candidates.len()),
        untimed: 0,
        seconds: 0.0,
        timed_at: describe_settings(config),
        beyond_reach_of: None,
    };
    for (index, choice) in candidates.iter().enumerate() {
        if index > 0 {
            tuning.beyond_reach_of = match (tuning.default_ms(), cpu_ms) {
                (Some(ms), Some(cpu_ms)) if ms > MOST_TUNING_GAINS * cpu_ms => Some(cpu_ms),
                _ => None,
            };
            if tuning.beyond_reach_of.is_some() {
                break;
            }
            // Started only when a candidate as long as the average so far still fits.
            let elapsed = started.elapsed().as_secs_f64();
            if elapsed + elapsed / index as f64 > budget_s {
                tuning.untimed = candidates.len() - index;
                break;
            }
        }
        timing(index);
        let fastest_ms = tuning.fastest().map(|(_, ms)| ms);
        tuning.tried.push(time_one(*choice, fastest_ms).await);
    }
    // A second round for the fastest and the defaults, to tell a faster kernel from a noisy
    // step: each keeps the lower of its two medians (noise only ever adds time).
    let elapsed = started.elapsed().as_secs_f64();
    let each = elapsed / tuning.tried.len().max(1) as f64;
    if let Some((fastest, _)) = tuning.fastest()
        && fastest != KernelChoice::default()
        && tuning.default_ms().is_some()
        && elapsed + 2.0 * each <= budget_s
    {
        timing(candidates.len());
        for choice in [fastest, KernelChoice::default()] {
            let again = time_one(choice, None).await;
            if let Some(first) = tuning.tried.iter_mut().find(|t| t.choice == choice) {
                first.seconds += again.seconds;
                first.outcome = match (&first.outcome, again.outcome) {
                    (Ok(before), Ok(now)) => Ok(before.min(now)),
                    (_, Err(why)) => Err(why),
                    (Err(why), _) => Err(why.clone()),
                };
            }
        }
    }
    tuning.seconds = started.elapsed().as_secs_f64();
    tuning
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(outcomes: &[(KernelChoice, Result<f64, &str>)]) -> Tuning {
        Tuning {
            tried: outcomes
                .iter()
                .map(|(choice, outcome)| Tried {
                    choice: *choice,
                    outcome: (*outcome).map_err(str::to_string),
                    timed_ms: outcome.ok(),
                    seconds: 0.5,
                })
                .collect(),
            untimed: 0,
            seconds: 3.04,
            timed_at: "unet, 2 × 32³".into(),
            beyond_reach_of: None,
        }
    }

    #[test]
    fn the_fastest_agreeing_candidate_wins_and_a_disagreeing_one_never_does() {
        let [default, wide, along_y, ..] = KernelChoice::candidates()[..] else {
            unreachable!()
        };
        let tuning = pass(&[
            (default, Ok(40.0)),
            (wide, Ok(31.0)),
            (along_y, Err("its numbers differ")),
        ]);
        assert_eq!(tuning.chosen(), Some((wide, 31.0)));
        assert_eq!(
            tuning.sentence(),
            "tuned in 3.0 s (3 candidates at unet, 2 × 32³): tiles 16×8, 1.3× faster than the \
             default (31 against 40 ms/step) · refused: tiles 8×8, voxels along y (its numbers \
             differ)"
        );
        // A tie, or a gain within the noise of a step, leaves the defaults.
        let tie = pass(&[(default, Ok(40.0)), (wide, Ok(40.0))]);
        assert_eq!(tie.chosen(), Some((default, 40.0)));
        let within_noise = pass(&[(default, Ok(40.0)), (wide, Ok(37.0))]);
        assert_eq!(within_noise.chosen(), Some((default, 40.0)));
        assert_eq!(
            tie.found(),
            "the default kernels were the fastest (40 ms/step)"
        );
        let none = pass(&[(default, Err("lost")), (wide, Err("lost"))]);
        assert_eq!(none.chosen(), None);
        assert!(
            none.to_keep(TuningKey {
                adapter: "x".into(),
                model: "unet".into(),
                patch: 32,
                batch: 2
            })
            .is_none()
        );
        let only_other = pass(&[(default, Err("differs")), (wide, Ok(50.0))]);
        assert!(
            only_other
                .found()
                .contains("the default kernels' numbers differed")
        );
        let software = Tuning {
            beyond_reach_of: Some(33.0),
            ..pass(&[(default, Ok(722.0))])
        };
        assert_eq!(
            software.sentence(),
            "not tuned: with the default kernels a step took 722 ms, more than 3× the CPU's 33, \
             beyond what a choice of kernels has gained"
        );
    }
}
