//! Applying an input to a conversation and committing the result, with one conflict-retry
//! loop ([`Engine::retrying_conflicts`]); then delivering what the commit produced, and the
//! follow-ups (offers) it leads to.

use std::collections::VecDeque;
use std::time::SystemTime;

use tracing::Instrument as _;

use super::delivery::Held;
use super::{Engine, EngineError, Outcome};
use crate::conversation::{
    Conversation, Effect, Input, State, TranscriptLine, Transition, TransitionError,
};
use crate::ids::{ConversationId, QueueId};
use crate::routing::{after_transition, on_start};
use crate::store::{Commit, PendingEffect, StoreError};

/// A state change as saved: the conversation after it, the effects waiting in the outbox
/// (held by this instance), and the transcript lines it added.
#[derive(Debug)]
pub(super) struct Committed {
    pub(super) conversation: Conversation,
    pub(super) pending: Vec<PendingEffect>,
    pub(super) lines: Vec<TranscriptLine>,
}

/// One try of a change that reads, decides and commits.
pub(super) enum Attempt<T> {
    /// Done (committed, or nothing to do).
    Done(T),
    /// The store reported a conflict: read again and try again.
    Conflict,
}

impl Engine {
    /// The stored conversation `id`; [`EngineError::NotFound`] when there is none.
    pub(super) async fn load_existing(
        &self,
        id: &ConversationId,
    ) -> Result<crate::store::Stored, EngineError> {
        self.store
            .load(id)
            .await?
            .ok_or_else(|| EngineError::NotFound(id.clone()))
    }

    /// Runs `attempt` until it is done, at most [`super::EngineBuilder::conflict_retries`]
    /// times. Each conflict means a concurrent writer succeeded, so this bounds how many
    /// writers on one conversation are absorbed before [`EngineError::Contention`].
    pub(super) async fn retrying_conflicts<T, F, Fut>(
        &self,
        mut attempt: F,
    ) -> Result<T, EngineError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Attempt<T>, EngineError>>,
    {
        for _ in 0..self.conflict_retries {
            // Boxed: an attempt holds a whole read-decide-commit, and the callers' futures
            // stay small.
            if let Attempt::Done(done) = Box::pin(attempt()).await? {
                return Ok(done);
            }
        }
        Err(EngineError::Contention(self.conflict_retries))
    }

    /// Commits a changed conversation with what its transition produced: the lines go to the
    /// transcript (an agent's message too, from the moment it is committed, whatever becomes
    /// of its delivery), the effects to the outbox, claimed by this instance, and the
    /// conversation's next deadline to the store's due index.
    pub(super) async fn commit(
        &self,
        conversation: Conversation,
        expected_version: Option<u64>,
        transition: Transition,
        applies: Option<u64>,
        now: SystemTime,
    ) -> Result<Committed, StoreError> {
        let Transition { lines, effects, .. } = transition;
        let deadline = conversation.next_deadline(&self.config);
        let commit = Commit {
            conversation,
            expected_version,
            transcript: lines,
            effects,
            deadline,
            applies,
            at: now,
            // Delivered by this instance right after the commit.
            claim: Some(self.lease()),
        };
        let (_, pending) = self.store.commit(&commit).await?;
        metrics::counter!("messenger_channel_commits_total").increment(1);
        Ok(Committed {
            conversation: commit.conversation,
            pending,
            lines: commit.transcript,
        })
    }

    /// Adds the automated messages of the conversation's queue that a transition calls for
    /// ([`crate::routing::after_transition`]).
    fn automate(
        &self,
        before: &State,
        before_queue: Option<&QueueId>,
        input: &Input,
        after: &Conversation,
        transition: &mut Transition,
        now: SystemTime,
    ) {
        let from = self.routing.queue(before_queue);
        let to = self.queue_of(after);
        let name = |agent: &crate::ids::AgentId| {
            self.agent_names
                .as_ref()
                .and_then(|names| names(agent))
                .unwrap_or_else(|| agent.as_str().to_owned())
        };
        for (trigger, text) in after_transition(from, to, before, input, after, &name) {
            transition.add_automated(now, trigger, text);
        }
    }

    /// A new conversation's automated message (the greeting, or outside its queue's
    /// operating hours that message), and its close when the queue closes such
    /// conversations ([`crate::routing::on_start`]).
    ///
    /// # Errors
    /// The machine's refusal to close (it cannot happen to a conversation just started).
    pub(super) fn automate_start(
        &self,
        started: &mut Conversation,
        transition: &mut Transition,
        now: SystemTime,
    ) -> Result<(), TransitionError> {
        let (message, close) = on_start(self.queue_of(started), started, now);
        if let Some((trigger, text)) = message {
            transition.add_automated(now, trigger, text);
        }
        if close {
            transition
                .effects
                .retain(|e| !matches!(e, Effect::RequestOffer { .. }));
            let closed = started.apply(Input::CloseOutsideHours, now, &self.config)?;
            transition.lines.extend(closed.lines);
            transition.effects.extend(closed.effects);
        }
        Ok(())
    }

    /// Loads a conversation, applies one input and commits, retrying on conflicts.
    pub(super) async fn apply(
        &self,
        id: &ConversationId,
        input: &Input,
        now: SystemTime,
    ) -> Result<Committed, EngineError> {
        let span = tracing::debug_span!("transition", conversation = %id, input = ?input.kind());
        self.retrying_conflicts(|| async {
            let stored = self.load_existing(id).await?;
            let mut conversation = stored.conversation;
            let before = conversation.state().clone();
            let before_queue = conversation.queue().cloned();
            let from = before.kind();
            let mut transition = conversation.apply(input.clone(), now, &self.config)?;
            self.automate(
                &before,
                before_queue.as_ref(),
                input,
                &conversation,
                &mut transition,
                now,
            );
            tracing::debug!(
                ?from,
                to = ?conversation.state().kind(),
                lines = transition.lines.len(),
                effects = transition.effects.len(),
                "transition"
            );
            match self
                .commit(conversation, Some(stored.version), transition, None, now)
                .await
            {
                Ok(done) => Ok(Attempt::Done(done)),
                Err(StoreError::Conflict) => Ok(Attempt::Conflict),
                Err(e) => Err(e.into()),
            }
        })
        .instrument(span)
        .await
    }

    /// Applies an input and everything it leads to (offers found by the router).
    pub(super) async fn run(
        &self,
        id: ConversationId,
        input: Input,
        now: SystemTime,
    ) -> Result<Outcome, EngineError> {
        let committed = self.apply(&id, &input, now).await?;
        Ok(self.deliver_committed(committed, now).await)
    }

    /// Delivers a commit's effects (holding their claim) and the follow-ups they lead to.
    pub(super) async fn deliver_committed(&self, committed: Committed, now: SystemTime) -> Outcome {
        let mut outcome = Outcome::default();
        let queue = self.deliver_held(committed, now, &mut outcome).await;
        self.drain(queue, now, &mut outcome).await;
        outcome
    }

    /// Delivers a commit's effects while renewing their claim; returns the follow-ups.
    async fn deliver_held(
        &self,
        committed: Committed,
        now: SystemTime,
        outcome: &mut Outcome,
    ) -> VecDeque<(ConversationId, Input)> {
        let Committed {
            conversation,
            pending,
            lines,
        } = committed;
        let keys: Vec<String> = pending.iter().map(|p| p.key.clone()).collect();
        let mut queue = VecDeque::new();
        let held = Held::new(self.passes.began(now));
        self.holding(
            &keys,
            &held,
            self.deliver(
                &conversation,
                pending,
                &lines,
                now,
                &held,
                &mut queue,
                outcome,
            ),
        )
        .await;
        queue
    }

    /// Follow-up inputs (offers), each applied and delivered in turn.
    pub(super) async fn drain(
        &self,
        mut queue: VecDeque<(ConversationId, Input)>,
        now: SystemTime,
        outcome: &mut Outcome,
    ) {
        while let Some((id, input)) = queue.pop_front() {
            match self.apply(&id, &input, now).await {
                Ok(committed) => {
                    let more = self.deliver_held(committed, now, outcome).await;
                    queue.extend(more);
                }
                Err(e) => {
                    // Another instance made an offer meanwhile, or the conversation moved on:
                    // the reservation made at `now` for this offer is undone as the store says
                    // (`undo_reservation`: ended, or set back to the outstanding offer of the
                    // same agent it renewed, or left to their session).
                    if let Input::OfferTo(agent) = &input {
                        let until = self.hold(now).until;
                        if let Err(e) = self.undo_reservation(&id, agent, until).await {
                            tracing::warn!(error = %e, "a reservation could not be ended; it lapses with the offer's countdown");
                        }
                    }
                    match e {
                        EngineError::Transition(e) => {
                            tracing::debug!(error = %e, "follow-up dropped");
                        }
                        e => tracing::warn!(error = %e, "follow-up failed"),
                    }
                }
            }
        }
    }
}
