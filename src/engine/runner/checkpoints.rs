//! The checkpoints a page keeps so that a new worker can go on after a crash: sent at pauses,
//! taken back in a fresh engine.

use super::Engine;
use crate::engine::protocol::{Checkpoint, Envelope, Event};
use crate::report::StepReport;
use crate::train::TrainError;

impl Engine {
    /// Sends the session's weights, Adam's moments and position, for the page to keep.
    pub(super) async fn checkpoint(&mut self) {
        let Some(session) = self.session.as_ref().filter(|_| self.checkpoints) else {
            return;
        };
        let checkpoint = Checkpoint {
            step: session.steps_done(),
            model: session.net().kind(),
            sampler_position: session.sampler_position(),
        };
        let weights = crate::model::weights::to_safetensors(session.net(), &[])
            .await
            .map_err(TrainError::Device);
        let moments = session.adam_moments().await;
        match (weights, moments) {
            (Ok(weights), Ok(moments)) => {
                let run = self.run;
                (self.sink)(Envelope::with(
                    Event::Checkpoint { run, checkpoint },
                    vec![weights, moments],
                ));
            }
            (Err(error), _) | (_, Err(error)) => self.fail(error),
        }
    }

    /// A run continued from the page's checkpoint, in a fresh engine.
    pub(super) async fn restore(
        &mut self,
        run: u64,
        checkpoint: Checkpoint,
        history: Vec<StepReport>,
        buffers: Vec<Vec<u8>>,
    ) {
        self.run = run;
        self.drop_session();
        if !self.ensure_session().await {
            return;
        }
        let session = self.session.as_mut().expect("just ensured");
        let result = match buffers.first() {
            Some(weights) => session.restore_checkpoint(
                weights,
                buffers.get(1).map(Vec::as_slice),
                checkpoint.model,
                checkpoint.step,
                checkpoint.sampler_position,
            ),
            None => Err(TrainError::Config(
                "The checkpoint came without weights.".into(),
            )),
        };
        match result {
            Ok(()) => {
                self.history = history;
                self.history.truncate(checkpoint.step);
                self.announce_session();
            }
            Err(error) => {
                self.session = None;
                self.fail(error);
            }
        }
    }
}
