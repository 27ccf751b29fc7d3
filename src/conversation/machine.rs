//! The transition function.

use std::time::SystemTime;

use super::{
    Author, CloseReason, Conversation, ConversationConfig, Declined, Effect, FileLine, Inbound,
    Input, InputKind, LineBody, MediaState, Offer, State, StateKind, TimerKind, TranscriptLine,
};
use crate::ids::{AgentId, ConversationId, PageId, UserId};
use crate::time::saturating_add;

/// An input the conversation cannot take in its state. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// The input makes no sense in this state.
    #[error("{input:?} is not possible in state {state:?}")]
    Illegal {
        /// The state.
        state: StateKind,
        /// The input.
        input: InputKind,
    },
    /// The conversation is closed; closed conversations never change.
    #[error(
        "the conversation is closed; {input:?} is not possible (a new message starts a new conversation)"
    )]
    Closed {
        /// The input.
        input: InputKind,
    },
    /// The agent acted on an offer that was not made to them.
    #[error("the conversation was not offered to agent {agent}")]
    NotOfferedTo {
        /// The agent who acted.
        agent: AgentId,
        /// The agent it was offered to, if any.
        offered_to: Option<AgentId>,
    },
    /// The offer lapsed before the agent accepted.
    #[error("the offer to agent {agent} expired")]
    OfferExpired {
        /// The agent.
        agent: AgentId,
        /// When it lapsed.
        expired_at: SystemTime,
    },
    /// An offer is already outstanding.
    #[error("an offer to agent {agent} is outstanding")]
    OfferOutstanding {
        /// The agent it is offered to.
        agent: AgentId,
    },
    /// The agent declined this conversation recently and may not be offered it again yet.
    #[error("agent {agent} declined this conversation recently")]
    RecentlyDeclined {
        /// The agent.
        agent: AgentId,
        /// When they may be offered it again.
        until: SystemTime,
    },
    /// The agent does not hold this conversation.
    #[error("agent {agent} does not hold this conversation")]
    NotHolder {
        /// The agent who acted.
        agent: AgentId,
        /// The agent who holds it, if any.
        holder: Option<AgentId>,
    },
    /// Another app or the Page inbox holds the thread: nothing can be sent until it is
    /// passed back.
    #[error("another app holds the Messenger thread; sending is paused until it is passed back")]
    ThreadPaused,
}

/// One transition: the conversation after `input` at `now`, and the effects to carry out.
///
/// Pure: the same arguments always give the same result.
///
/// # Errors
/// A [`TransitionError`] when the input is not possible in the conversation's state.
pub fn transition(
    conversation: &Conversation,
    input: Input,
    now: SystemTime,
    config: &ConversationConfig,
) -> Result<(Conversation, Vec<Effect>), TransitionError> {
    let mut next = conversation.clone();
    let effects = next.apply(input, now, config)?;
    Ok((next, effects))
}

fn notice(now: SystemTime, text: impl Into<String>) -> Effect {
    Effect::Transcript(TranscriptLine {
        at: now,
        author: Author::System,
        body: LineBody::Notice(text.into()),
        mid: None,
    })
}

impl Conversation {
    /// A new conversation from the customer's first message: Open, with its effects (the
    /// message in the transcript, the privacy notice if configured, a request for an offer,
    /// the auto-close timer).
    pub fn start(
        id: ConversationId,
        page: PageId<'static>,
        customer: UserId<'static>,
        first: Inbound,
        now: SystemTime,
        config: &ConversationConfig,
    ) -> (Self, Vec<Effect>) {
        let sent = first.time(now);
        let standby = first.standby;
        let conversation = Self {
            id,
            page,
            customer,
            state: State::Open { offer: None },
            created_at: now,
            last_customer_message_at: Some(sent),
            last_activity_at: sent,
            paused: standby,
            declined: Vec::new(),
            previous_agent: None,
            privacy_notice_sent: !standby && config.privacy_notice.is_some(),
        };
        let mut effects = Vec::with_capacity(first.lines.len() + 5);
        push_customer_lines(&mut effects, first, now);
        if standby {
            // Another app (a bot, or the Page inbox) holds the thread: nothing is sent over it,
            // and agents are offered the conversation once the thread is passed back.
            effects.push(notice(now, STANDBY_NOTICE));
        } else {
            if let Some(text) = &config.privacy_notice {
                effects.push(Effect::Send {
                    agent: None,
                    message: super::Outgoing::PrivacyNotice(text.clone()),
                });
                effects.push(notice(now, text.clone()));
            }
            effects.push(Effect::RequestOffer {
                exclude: Vec::new(),
                prefer: None,
            });
        }
        effects.push(Effect::SetTimer {
            timer: TimerKind::Close,
            at: saturating_add(sent, config.auto_close_open_active),
        });
        (conversation, effects)
    }

    /// Applies `input` in place; on error nothing is changed. See [`transition`].
    ///
    /// One arm per input, so that the transition table reads in one place.
    ///
    /// # Errors
    /// A [`TransitionError`] when the input is not possible in the conversation's state.
    #[allow(clippy::too_many_lines)]
    pub fn apply(
        &mut self,
        input: Input,
        now: SystemTime,
        config: &ConversationConfig,
    ) -> Result<Vec<Effect>, TransitionError> {
        if self.is_closed() {
            return Err(TransitionError::Closed {
                input: input.kind(),
            });
        }
        let input_kind = input.kind();
        match input {
            Input::CustomerMessage(inbound) => Ok(self.customer_message(inbound, now, config)),
            Input::Tick => Ok(self.tick(now, config)),
            Input::ThreadTaken => Ok(self.set_paused(true, now)),
            Input::ThreadReturned => {
                let mut effects = self.set_paused(false, now);
                // Started while another app held the thread: the privacy notice was not sent.
                if !effects.is_empty() && !self.privacy_notice_sent {
                    if let Some(text) = &config.privacy_notice {
                        self.privacy_notice_sent = true;
                        effects.push(Effect::Send {
                            agent: None,
                            message: super::Outgoing::PrivacyNotice(text.clone()),
                        });
                        effects.push(notice(now, text.clone()));
                    }
                }
                // Waiting in the queue while another app held the thread: offer it now.
                if !effects.is_empty() && matches!(self.state, State::Open { offer: None }) {
                    self.prune_declined(now, config);
                    effects.push(Effect::RequestOffer {
                        exclude: self.recently_declined(now, config),
                        prefer: None,
                    });
                }
                Ok(effects)
            }
            Input::OfferTo(agent) => self.offer_to(agent, now, config),
            Input::Accept(agent) => self.accept(&agent, now, config),
            Input::Reject(agent) => self.reject(&agent, now, config),
            Input::AgentSend { agent, message } => {
                self.require_holder(&agent, StateKind::Active, input_kind)?;
                if self.paused {
                    return Err(TransitionError::ThreadPaused);
                }
                self.last_activity_at = now;
                Ok(vec![
                    Effect::Send {
                        agent: Some(agent),
                        message,
                    },
                    Effect::SetTimer {
                        timer: TimerKind::Close,
                        at: saturating_add(now, config.auto_close_open_active),
                    },
                ])
            }
            Input::End(agent) => {
                self.require_holder(&agent, StateKind::Active, input_kind)?;
                self.state = State::WrapUp {
                    agent: agent.clone(),
                };
                self.last_activity_at = now;
                Ok(vec![
                    notice(now, format!("{agent} ended the conversation")),
                    Effect::SetTimer {
                        timer: TimerKind::Close,
                        at: saturating_add(now, config.auto_close_wrap_up),
                    },
                ])
            }
            Input::CloseSession(agent) => match &self.state {
                State::Active { agent: holder } if *holder == agent => {
                    self.state = State::Waiting {
                        agent: agent.clone(),
                    };
                    self.last_activity_at = now;
                    Ok(vec![
                        Effect::SessionReleased {
                            agent: agent.clone(),
                        },
                        notice(
                            now,
                            format!("{agent} closed the session; the conversation is waiting"),
                        ),
                        Effect::SetTimer {
                            timer: TimerKind::Close,
                            at: saturating_add(now, config.waiting_inactivity),
                        },
                    ])
                }
                State::WrapUp { agent: holder } if *holder == agent => {
                    self.state = State::Closed {
                        reason: CloseReason::Agent,
                    };
                    self.last_activity_at = now;
                    Ok(vec![
                        Effect::SessionReleased {
                            agent: agent.clone(),
                        },
                        notice(now, format!("{agent} closed the conversation")),
                        Effect::CancelTimer {
                            timer: TimerKind::Close,
                        },
                        Effect::Closed {
                            reason: CloseReason::Agent,
                        },
                    ])
                }
                State::Active { agent: holder } | State::WrapUp { agent: holder } => {
                    Err(TransitionError::NotHolder {
                        agent,
                        holder: Some(holder.clone()),
                    })
                }
                other => Err(TransitionError::Illegal {
                    state: other.kind(),
                    input: input_kind,
                }),
            },
            Input::Revive(agent) => match &self.state {
                State::Waiting { agent: holder } if *holder == agent => {
                    self.state = State::Active {
                        agent: agent.clone(),
                    };
                    self.last_activity_at = now;
                    Ok(vec![
                        Effect::SessionStarted {
                            agent: agent.clone(),
                        },
                        notice(now, format!("{agent} reopened the session")),
                        Effect::SetTimer {
                            timer: TimerKind::Close,
                            at: saturating_add(now, config.auto_close_open_active),
                        },
                    ])
                }
                State::Waiting { agent: holder } => Err(TransitionError::NotHolder {
                    agent,
                    holder: Some(holder.clone()),
                }),
                other => Err(TransitionError::Illegal {
                    state: other.kind(),
                    input: input_kind,
                }),
            },
        }
    }

    /// The agents who declined within the re-offer interval.
    fn recently_declined(&self, now: SystemTime, config: &ConversationConfig) -> Vec<AgentId> {
        self.declined
            .iter()
            .filter(|d| saturating_add(d.at, config.reoffer_interval) > now)
            .map(|d| d.agent.clone())
            .collect()
    }

    fn prune_declined(&mut self, now: SystemTime, config: &ConversationConfig) {
        self.declined
            .retain(|d| saturating_add(d.at, config.reoffer_interval) > now);
    }

    fn require_holder(
        &self,
        agent: &AgentId,
        wanted: StateKind,
        input: InputKind,
    ) -> Result<(), TransitionError> {
        match &self.state {
            State::Active { agent: holder } | State::WrapUp { agent: holder }
                if self.state.kind() == wanted =>
            {
                if holder == agent {
                    Ok(())
                } else {
                    Err(TransitionError::NotHolder {
                        agent: agent.clone(),
                        holder: Some(holder.clone()),
                    })
                }
            }
            other => Err(TransitionError::Illegal {
                state: other.kind(),
                input,
            }),
        }
    }

    fn customer_message(
        &mut self,
        inbound: Inbound,
        now: SystemTime,
        config: &ConversationConfig,
    ) -> Vec<Effect> {
        let mut effects = Vec::with_capacity(inbound.lines.len() + 3);
        let sent = inbound.time(now);
        let standby = inbound.standby;
        push_customer_lines(&mut effects, inbound, now);
        if standby && !self.paused {
            self.paused = true;
            effects.push(notice(now, STANDBY_NOTICE));
        }
        self.last_customer_message_at =
            Some(self.last_customer_message_at.map_or(sent, |t| t.max(sent)));
        self.last_activity_at = self.last_activity_at.max(sent);
        match &self.state {
            State::Open { offer: None } if !self.paused => {
                self.prune_declined(now, config);
                effects.push(Effect::RequestOffer {
                    exclude: self.recently_declined(now, config),
                    prefer: None,
                });
            }
            State::Waiting { agent } => {
                let agent = agent.clone();
                self.prune_declined(now, config);
                let prefer = config.agent_affinity.then(|| agent.clone());
                self.state = State::Open { offer: None };
                effects.push(notice(
                    now,
                    "the customer wrote again; the conversation is back in the queue",
                ));
                if !self.paused {
                    effects.push(Effect::RequestOffer {
                        exclude: self.recently_declined(now, config),
                        prefer,
                    });
                }
            }
            _ => {}
        }
        let close_after = match self.state {
            State::WrapUp { .. } => config.auto_close_wrap_up,
            _ => config.auto_close_open_active,
        };
        effects.push(Effect::SetTimer {
            timer: TimerKind::Close,
            at: saturating_add(now, close_after),
        });
        effects
    }

    fn offer_to(
        &mut self,
        agent: AgentId,
        now: SystemTime,
        config: &ConversationConfig,
    ) -> Result<Vec<Effect>, TransitionError> {
        match &self.state {
            State::Open { offer: None } => {
                if let Some(d) = self.declined.iter().rev().find(|d| {
                    d.agent == agent && saturating_add(d.at, config.reoffer_interval) > now
                }) {
                    return Err(TransitionError::RecentlyDeclined {
                        agent,
                        until: saturating_add(d.at, config.reoffer_interval),
                    });
                }
                let offer = Offer {
                    agent,
                    offered_at: now,
                    expires_at: saturating_add(now, config.offer_timeout),
                };
                let expires_at = offer.expires_at;
                self.state = State::Open {
                    offer: Some(offer.clone()),
                };
                Ok(vec![
                    Effect::NotifyOffer(offer),
                    Effect::SetTimer {
                        timer: TimerKind::Offer,
                        at: expires_at,
                    },
                ])
            }
            State::Open { offer: Some(o) } => Err(TransitionError::OfferOutstanding {
                agent: o.agent.clone(),
            }),
            other => Err(TransitionError::Illegal {
                state: other.kind(),
                input: InputKind::OfferTo,
            }),
        }
    }

    fn accept(
        &mut self,
        agent: &AgentId,
        now: SystemTime,
        config: &ConversationConfig,
    ) -> Result<Vec<Effect>, TransitionError> {
        match &self.state {
            State::Open { offer: Some(o) } if o.agent == *agent => {
                if now >= o.expires_at {
                    return Err(TransitionError::OfferExpired {
                        agent: agent.clone(),
                        expired_at: o.expires_at,
                    });
                }
                self.state = State::Active {
                    agent: agent.clone(),
                };
                self.previous_agent = Some(agent.clone());
                self.last_activity_at = now;
                Ok(vec![
                    Effect::CancelTimer {
                        timer: TimerKind::Offer,
                    },
                    Effect::OfferEnded {
                        agent: agent.clone(),
                    },
                    Effect::SessionStarted {
                        agent: agent.clone(),
                    },
                    notice(now, format!("{agent} accepted the conversation")),
                    Effect::SetTimer {
                        timer: TimerKind::Close,
                        at: saturating_add(now, config.auto_close_open_active),
                    },
                ])
            }
            State::Open { offer } => Err(TransitionError::NotOfferedTo {
                agent: agent.clone(),
                offered_to: offer.as_ref().map(|o| o.agent.clone()),
            }),
            other => Err(TransitionError::Illegal {
                state: other.kind(),
                input: InputKind::Accept,
            }),
        }
    }

    fn reject(
        &mut self,
        agent: &AgentId,
        now: SystemTime,
        config: &ConversationConfig,
    ) -> Result<Vec<Effect>, TransitionError> {
        match &self.state {
            State::Open { offer: Some(o) } if o.agent == *agent => {
                self.state = State::Open { offer: None };
                self.prune_declined(now, config);
                self.declined.push(Declined {
                    agent: agent.clone(),
                    at: now,
                });
                Ok(vec![
                    Effect::CancelTimer {
                        timer: TimerKind::Offer,
                    },
                    Effect::OfferEnded {
                        agent: agent.clone(),
                    },
                    notice(now, format!("{agent} declined the conversation")),
                    Effect::RequestOffer {
                        exclude: self.recently_declined(now, config),
                        prefer: None,
                    },
                ])
            }
            State::Open { offer } => Err(TransitionError::NotOfferedTo {
                agent: agent.clone(),
                offered_to: offer.as_ref().map(|o| o.agent.clone()),
            }),
            other => Err(TransitionError::Illegal {
                state: other.kind(),
                input: InputKind::Reject,
            }),
        }
    }

    fn tick(&mut self, now: SystemTime, config: &ConversationConfig) -> Vec<Effect> {
        let mut effects = Vec::new();
        // An expired offer goes back to the queue first, so that auto-close withdraws nothing twice.
        if let State::Open { offer: Some(o) } = &self.state {
            if now >= o.expires_at {
                let agent = o.agent.clone();
                self.state = State::Open { offer: None };
                self.prune_declined(now, config);
                self.declined.push(Declined {
                    agent: agent.clone(),
                    at: now,
                });
                effects.push(Effect::WithdrawOffer {
                    agent: agent.clone(),
                });
                effects.push(Effect::OfferEnded {
                    agent: agent.clone(),
                });
                effects.push(notice(now, format!("the offer to {agent} timed out")));
                effects.push(Effect::RequestOffer {
                    exclude: self.recently_declined(now, config),
                    prefer: None,
                });
            }
        }
        let (after, reason) = match &self.state {
            State::Open { .. } | State::Active { .. } => {
                (config.auto_close_open_active, CloseReason::AutoClose)
            }
            State::WrapUp { .. } => (config.auto_close_wrap_up, CloseReason::AutoClose),
            State::Waiting { .. } => (config.waiting_inactivity, CloseReason::Inactivity),
            State::Closed { .. } => return effects,
        };
        if now < saturating_add(self.last_activity_at, after) {
            return effects;
        }
        // Closing: undo what the state held.
        effects.retain(|e| !matches!(e, Effect::RequestOffer { .. }));
        match &self.state {
            State::Open { offer: Some(o) } => {
                effects.push(Effect::WithdrawOffer {
                    agent: o.agent.clone(),
                });
                effects.push(Effect::OfferEnded {
                    agent: o.agent.clone(),
                });
            }
            State::Active { agent } | State::WrapUp { agent } => {
                effects.push(Effect::SessionReleased {
                    agent: agent.clone(),
                });
            }
            _ => {}
        }
        self.state = State::Closed { reason };
        effects.push(notice(
            now,
            if reason == CloseReason::Inactivity {
                "closed after inactivity"
            } else {
                "closed automatically"
            },
        ));
        effects.push(Effect::CancelTimer {
            timer: TimerKind::Offer,
        });
        effects.push(Effect::CancelTimer {
            timer: TimerKind::Close,
        });
        effects.push(Effect::Closed { reason });
        effects
    }

    fn set_paused(&mut self, paused: bool, now: SystemTime) -> Vec<Effect> {
        if self.paused == paused {
            return Vec::new();
        }
        self.paused = paused;
        vec![notice(
            now,
            if paused {
                "another app or the Page inbox took the thread; sending is paused"
            } else {
                "the thread was passed back; sending resumed"
            },
        )]
    }
}

/// The notice for a message that arrived on `standby`.
const STANDBY_NOTICE: &str =
    "the customer wrote while another app or the Page inbox holds the thread; sending is paused";

fn push_customer_lines(effects: &mut Vec<Effect>, inbound: Inbound, now: SystemTime) {
    let at = inbound.time(now);
    let mut mid = inbound.mid;
    for body in inbound.lines {
        if let LineBody::File(FileLine {
            url: Some(url),
            media: MediaState::Pending,
            ..
        }) = &body
        {
            effects.push(Effect::FetchMedia {
                url: url.clone(),
                sent_at: at,
            });
        }
        effects.push(Effect::Transcript(TranscriptLine {
            at,
            author: Author::Customer,
            body,
            mid: mid.take(),
        }));
    }
}
