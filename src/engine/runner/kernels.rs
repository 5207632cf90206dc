//! Which kernels the GPU trains with: a choice kept from an earlier tuning pass for this
//! adapter and these settings, or a fresh pass (`engine/tuning.rs`), told to the driver as an
//! [`Event::Tuning`] so that the page and the CLI keep it for the next visit.

use std::sync::Arc;

use crate::backend::ComputeDevice;
use crate::model::kernel_choice::KernelChoice;
use crate::train::{TrainError, TrainingConfig};
use crate::volume::LabelledVolume;

use super::super::probe::{Timed, agreement, time_steps};
use super::super::protocol::{Envelope, Event, KeptTuning, TuningReport, update_kept};
use super::super::tuning::{CANDIDATE_STEPS, Reference, TUNING_BUDGET_S, tune, tuning_key};
use super::Engine;

impl Engine {
    /// The choice kept for `gpu` and the current settings in this build, if any.
    pub(super) fn kept_kernels(&self, gpu: &ComputeDevice) -> Option<(KeptTuning, KernelChoice)> {
        let key = tuning_key(gpu, &self.settings.config);
        self.kept_tunings
            .iter()
            .find(|kept| kept.is_for(&key))
            .and_then(|kept| Some((kept.clone(), kept.kernels.parse().ok()?)))
    }

    /// Sets the GPU's kernels for a run that asked for the GPU (no probe): the kept choice as it
    /// is, or a tuning pass against the CPU's steps at the probe's settings.
    pub(super) async fn set_gpu_kernels(
        &mut self,
        gpu: &ComputeDevice,
        volume: &Arc<LabelledVolume>,
    ) -> Result<(), TrainError> {
        if !gpu.is_gpu_backend() {
            return Ok(());
        }
        if let Some((kept, choice)) = self.kept_kernels(gpu) {
            choice.apply();
            self.emit(Event::Tuning(kept_report(&kept)));
            return Ok(());
        }
        let config = self.settings.config.clone();
        let (probed, on_cpu) = self.time_cpu(&config, volume, "timing the CPU").await?;
        // Without a candidate that agrees, the GPU still trains, as asked, on the defaults;
        // the sentence says why.
        let _ = self
            .time_gpu_kernels(gpu, &probed, volume, &on_cpu, None)
            .await;
        Ok(())
    }

    /// Chooses and sets the GPU's kernels against the CPU's steps (`on_cpu`, at `probed`): the
    /// kept choice when it still agrees with the CPU, else a tuning pass (which, given the CPU's
    /// step time `cpu_ms`, stops after the defaults when no choice could beat the CPU). Returns
    /// the chosen kernels' step time at `probed`, or why the GPU cannot be used.
    pub(super) async fn time_gpu_kernels(
        &mut self,
        gpu: &ComputeDevice,
        probed: &TrainingConfig,
        volume: &Arc<LabelledVolume>,
        on_cpu: &Timed,
        cpu_ms: Option<f64>,
    ) -> Result<f64, String> {
        if !gpu.is_gpu_backend() {
            // A CPU standing in for the GPU (the engine's tests): no kernels to choose.
            return time_agreeing(probed, volume, gpu, on_cpu).await;
        }
        let key = tuning_key(gpu, &self.settings.config);
        let mut dropped = None;
        if let Some((kept, choice)) = self.kept_kernels(gpu) {
            choice.apply();
            match time_agreeing(probed, volume, gpu, on_cpu).await {
                Ok(ms) => {
                    self.emit(Event::Tuning(kept_report(&kept)));
                    return Ok(ms);
                }
                Err(why) => {
                    dropped = Some(format!(
                        "the kept choice ({}) was dropped: {why}",
                        choice.describe()
                    ))
                }
            }
        }
        let candidates = KernelChoice::candidates();
        let task = "tuning the GPU's kernels";
        // One more for the second round.
        let total = candidates.len() + 1;
        let reference = Reference {
            config: probed,
            volume,
            cpu: on_cpu,
        };
        let sink = &mut self.sink;
        let tuning = tune(
            &reference,
            gpu,
            &candidates,
            TUNING_BUDGET_S,
            cpu_ms,
            &mut |done| {
                sink(Envelope::new(Event::Progress {
                    task: task.to_string(),
                    done,
                    total,
                }))
            },
        )
        .await;
        self.progress(task, total, total);
        let chosen = tuning.chosen();
        chosen
            .map_or_else(KernelChoice::default, |(choice, _)| choice)
            .apply();
        let keep = if tuning.beyond_reach_of.is_none() {
            tuning.to_keep(key.clone())
        } else {
            None
        };
        let mut sentence = tuning.sentence();
        if let Some(dropped) = dropped.as_ref() {
            sentence = format!("{dropped}; {sentence}");
        }
        let report = TuningReport {
            sentence,
            keep,
            forget: dropped.map(|_| key),
        };
        self.kept_tunings = update_kept(std::mem::take(&mut self.kept_tunings), &report);
        self.emit(Event::Tuning(report));
        match chosen {
            Some((_, ms)) => Ok(ms),
            None => Err(tuning
                .tried
                .first()
                .and_then(|first| first.outcome.clone().err())
                .unwrap_or_else(|| "no kernels agreed with the CPU".into())),
        }
    }
}

/// What the driver is told when a kept choice is used.
fn kept_report(kept: &KeptTuning) -> TuningReport {
    TuningReport {
        sentence: format!("kernels kept from an earlier tuning pass: {}", kept.found),
        keep: None,
        forget: None,
    }
}

/// `gpu`'s median step at `probed` with the kernels set now, from the CPU's starting weights;
/// why not, when its first steps do not agree with the CPU's.
async fn time_agreeing(
    probed: &TrainingConfig,
    volume: &Arc<LabelledVolume>,
    gpu: &ComputeDevice,
    on_cpu: &Timed,
) -> Result<f64, String> {
    match time_steps(
        probed,
        volume,
        gpu,
        Some(&on_cpu.initial),
        None,
        CANDIDATE_STEPS,
    )
    .await
    {
        Ok(timed) => agreement(&on_cpu.first_steps, &timed.first_steps).map(|()| timed.median_ms),
        Err(error) => Err(error.to_string()),
    }
}
