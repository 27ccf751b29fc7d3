//! The transition function, and the rules it shares with hosts (who may be offered a
//! conversation, who may send in it).

use std::time::SystemTime;

use super::{
    Author, AutomatedTrigger, CloseReason, Conversation, ConversationConfig, Declined, Effect,
    FileLine, Inbound, Input, InputKind, Internal, LineBody, MediaState, NoteAuthor, Offer,
    Outgoing, State, StateKind, ThreadEvent, TranscriptLine, Transfer, TransferTarget, Transition,
};
use crate::ids::{AgentId, ConversationId, PageId, QueueId, UserId};
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
    /// The agent already takes part (holds the session, or is consulted): a transfer to
    /// oneself, a second invitation.
    #[error("agent {agent} already takes part in this conversation")]
    AlreadyTakesPart {
        /// The agent.
        agent: AgentId,
    },
    /// The agent is not consulted in this conversation.
    #[error("agent {agent} is not consulted in this conversation")]
    NotConsulted {
        /// The agent.
        agent: AgentId,
    },
}

/// Why an agent may not send in a conversation now ([`Conversation::may_send`]).
///
/// Its message is written for the agent, to show as it is.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use messenger_channel::conversation::{
///     Conversation, ConversationConfig, Inbound, LineBody, SendRefusal, StateKind,
/// };
/// use messenger_channel::ids::{AgentId, ConversationId, PageId, UserId};
///
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let (queued, _) = Conversation::start(
///     ConversationId::from("c1"),
///     PageId::from("page"),
///     UserId::from("psid"),
///     Inbound::new(Some("m_1".into()), vec![LineBody::Text("hi".into())]),
///     now,
///     &ConversationConfig::default(),
/// );
/// let refusal = queued.may_send(&AgentId::from("alice")).unwrap_err();
/// assert_eq!(refusal, SendRefusal::NoSession { state: StateKind::Open });
/// assert_eq!(
///     refusal.to_string(),
///     "the conversation is in the queue: accept it before writing"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendRefusal {
    /// The conversation is closed; closed conversations never change.
    #[error("the conversation is closed: the customer's next message starts a new one")]
    Closed,
    /// No agent holds a session: the conversation is in the queue, waiting, or in wrap-up.
    #[error("{}", no_session(*.state))]
    NoSession {
        /// The state it is in.
        state: StateKind,
    },
    /// Another agent holds the session.
    #[error("agent {holder} holds this conversation, not {agent}")]
    NotHolder {
        /// The agent who would send.
        agent: AgentId,
        /// The agent who holds the session.
        holder: AgentId,
    },
    /// Another app or the Page inbox holds the Messenger thread.
    #[error("another app holds the Messenger thread; sending is paused until it is passed back")]
    ThreadPaused,
}

impl SendRefusal {
    /// The sentence, with its facts, for a [`crate::texts::Catalogue`]. Rendered in English
    /// it is this refusal's `Display`.
    pub fn to_text(&self) -> crate::texts::Text {
        use crate::texts::{Text, TextId};
        match self {
            Self::Closed => Text::new(TextId::SendClosed),
            Self::NoSession { state } => Text::new(match state {
                StateKind::Open => TextId::SendInQueue,
                StateKind::Waiting => TextId::SendWaiting,
                StateKind::WrapUp => TextId::SendWrapUp,
                StateKind::Active | StateKind::Closed => TextId::SendNoSession,
            }),
            Self::NotHolder { agent, holder } => Text::new(TextId::SendNotHolder)
                .arg("holder", holder.as_str())
                .arg("agent", agent.as_str()),
            Self::ThreadPaused => Text::new(TextId::SendThreadPaused),
        }
    }

    /// What an agent reads, in `language` (the built-in catalogue; English is `Display`).
    pub fn text(&self, language: &crate::texts::Language) -> String {
        crate::texts::Catalogue::builtin().render(&self.to_text(), language)
    }
}

/// [`SendRefusal::NoSession`]'s message, by state.
fn no_session(state: StateKind) -> &'static str {
    match state {
        StateKind::Open => "the conversation is in the queue: accept it before writing",
        StateKind::Waiting => "the session is closed: reopen it before writing",
        StateKind::WrapUp => "the conversation has ended and is in wrap-up: nothing more is sent",
        StateKind::Active | StateKind::Closed => "no session is active in this conversation",
    }
}

/// The machine refuses an agent's message for the same reasons, with its own error.
impl From<SendRefusal> for TransitionError {
    fn from(refusal: SendRefusal) -> Self {
        match refusal {
            SendRefusal::Closed => Self::Closed {
                input: InputKind::AgentSend,
            },
            SendRefusal::NoSession { state } => Self::Illegal {
                state,
                input: InputKind::AgentSend,
            },
            SendRefusal::NotHolder { agent, holder } => Self::NotHolder {
                agent,
                holder: Some(holder),
            },
            SendRefusal::ThreadPaused => Self::ThreadPaused,
        }
    }
}

/// One transition: the conversation after `input` at `now`, and what the transition produced
/// (transcript lines and effects).
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
) -> Result<(Conversation, Transition), TransitionError> {
    let mut next = conversation.clone();
    let transition = next.apply(input, now, config)?;
    Ok((next, transition))
}

fn notice(now: SystemTime, text: impl Into<String>) -> TranscriptLine {
    line(now, Author::System, LineBody::Notice(text.into()))
}

/// A line with no message id and no reply.
fn line(at: SystemTime, author: Author, body: LineBody) -> TranscriptLine {
    TranscriptLine {
        at,
        author,
        body,
        mid: None,
        reply_to: None,
        sent_at: None,
    }
}

impl Transition {
    fn notice(&mut self, now: SystemTime, text: impl Into<String>) {
        self.lines.push(notice(now, text));
    }

    fn effect(&mut self, effect: Effect) {
        self.effects.push(effect);
    }

    /// Adds an automated message: sent with no agent (never `HUMAN_AGENT`), ahead of any
    /// request for an offer (so that a greeting goes before what the offer leads to), and
    /// recorded as a notice. The engine adds a queue's automated messages to the transitions
    /// that call for them ([`crate::routing::after_transition`]).
    pub fn add_automated(&mut self, now: SystemTime, trigger: AutomatedTrigger, text: String) {
        self.notice(now, text.clone());
        let send = Effect::Send {
            agent: None,
            message: Outgoing::Automated { trigger, text },
        };
        match self
            .effects
            .iter()
            .position(|e| matches!(e, Effect::RequestOffer { .. }))
        {
            Some(at) => self.effects.insert(at, send),
            None => self.effects.push(send),
        }
    }

    /// Sends the privacy notice and records it.
    fn privacy_notice(&mut self, now: SystemTime, text: &str) {
        self.effect(Effect::Send {
            agent: None,
            message: Outgoing::PrivacyNotice(text.to_owned()),
        });
        self.notice(now, text);
    }
}

impl Conversation {
    /// Whether `agent` may send in the conversation now: they hold its session (Active), and
    /// no other app holds the Messenger thread. The machine refuses
    /// [`Input::AgentSend`] for the same reasons (as a [`TransitionError`]), so a host can ask
    /// before it stores a file or calls the platform. The messaging window is a separate
    /// check ([`crate::window::check_window`] on [`Conversation::last_customer_message_at`]).
    ///
    /// # Errors
    /// The [`SendRefusal`] that applies first: closed, no session, another holder, paused.
    pub fn may_send(&self, agent: &AgentId) -> Result<(), SendRefusal> {
        match &self.state {
            State::Closed { .. } => Err(SendRefusal::Closed),
            State::Active { agent: holder } if holder != agent => Err(SendRefusal::NotHolder {
                agent: agent.clone(),
                holder: holder.clone(),
            }),
            State::Active { .. } if self.paused => Err(SendRefusal::ThreadPaused),
            State::Active { .. } => Ok(()),
            other => Err(SendRefusal::NoSession {
                state: other.kind(),
            }),
        }
    }

    /// The agents the conversation is not offered to at `now`: those who declined an offer of
    /// it, or let one lapse, within [`ConversationConfig::reoffer_interval`]. The machine
    /// leaves them out of its [`Effect::RequestOffer`] and refuses [`Input::OfferTo`] them
    /// ([`TransitionError::RecentlyDeclined`]); a host offering a queued conversation again
    /// leaves them out too.
    pub fn excluded_agents(
        &self,
        now: SystemTime,
        config: &ConversationConfig,
    ) -> impl Iterator<Item = &AgentId> {
        self.recent_declines(now, config).map(|d| &d.agent)
    }

    /// Whether the conversation waits for an offer: Open, with no outstanding offer, while no
    /// other app holds the thread. The machine asks for one ([`Effect::RequestOffer`]) when it
    /// gets there; when no agent was free, a host asks again later (the engine does at each
    /// tick), leaving out [`Conversation::excluded_agents`].
    pub fn awaits_offer(&self) -> bool {
        !self.paused && matches!(self.state, State::Open { offer: None })
    }

    /// The declines that still count at `now`, oldest first.
    fn recent_declines(
        &self,
        now: SystemTime,
        config: &ConversationConfig,
    ) -> impl DoubleEndedIterator<Item = &Declined> {
        self.declined
            .iter()
            .filter(move |d| reoffer_from(d, config) > now)
    }

    /// Asks the host for an offer, leaving out who declined recently.
    fn request_offer(
        &self,
        out: &mut Transition,
        prefer: Option<AgentId>,
        now: SystemTime,
        config: &ConversationConfig,
    ) {
        out.effect(Effect::RequestOffer {
            exclude: self.excluded_agents(now, config).cloned().collect(),
            prefer,
        });
    }

    /// A new conversation from the customer's first message: Open, with what it produced (the
    /// message in the transcript, the privacy notice if configured, a request for an offer).
    /// Its first deadline is auto-close ([`Conversation::next_deadline`]).
    pub fn start(
        id: ConversationId,
        page: PageId<'static>,
        customer: UserId<'static>,
        first: Inbound,
        now: SystemTime,
        config: &ConversationConfig,
    ) -> (Self, Transition) {
        Self::start_in_queue(None, id, page, customer, first, now, config)
    }

    /// As [`Conversation::start`], in the queue the routing rules chose
    /// ([`crate::routing::Routing::classify`]); `None` is the fallback queue. The machine
    /// asks for an offer whatever the queue's mode: a host with a Pick queue makes none.
    pub fn start_in_queue(
        queue: Option<QueueId>,
        id: ConversationId,
        page: PageId<'static>,
        customer: UserId<'static>,
        first: Inbound,
        now: SystemTime,
        config: &ConversationConfig,
    ) -> (Self, Transition) {
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
            delivered_until: None,
            read_until: None,
            recent_events: std::collections::VecDeque::new(),
            queue,
            transfer: None,
            consultants: Vec::new(),
            queued_at: None,
            told_no_agent: false,
            customer_record: None,
            customer_locale: None,
            affinity: None,
        };
        let mut out = Transition::default();
        push_customer_lines(&mut out, first, now);
        if standby {
            // Another app (a bot, or the Page inbox) holds the thread: nothing is sent over it,
            // and agents are offered the conversation once the thread is passed back.
            out.notice(now, STANDBY_NOTICE);
        } else {
            if let Some(text) = &config.privacy_notice {
                out.privacy_notice(now, text);
            }
            conversation.request_offer(&mut out, None, now, config);
        }
        (conversation, out)
    }

    /// Applies `input` in place; on error nothing is changed. See [`transition`].
    ///
    /// One arm per input, so that the transition table reads in one place. A closed
    /// conversation takes only [`Input::Thread`] events that are recorded after the close
    /// ([`ThreadEvent::is_recorded_after_close`]): lines (and a removal's forgetting), no
    /// change of state.
    ///
    /// # Errors
    /// A [`TransitionError`] when the input is not possible in the conversation's state.
    #[allow(clippy::too_many_lines)]
    pub fn apply(
        &mut self,
        input: Input,
        now: SystemTime,
        config: &ConversationConfig,
    ) -> Result<Transition, TransitionError> {
        if self.is_closed() {
            // What the customer (or the page, outside the channel) does after the close is
            // still recorded in the transcript: a reaction, an edit, a removal, an outside
            // reply. Receipts and every other input are refused.
            return match input {
                Input::Thread { event, at } if event.is_recorded_after_close() => {
                    let mut out = Transition::default();
                    self.thread_event(&mut out, event, at, now, config);
                    Ok(out)
                }
                _ => Err(TransitionError::Closed {
                    input: input.kind(),
                }),
            };
        }
        let input_kind = input.kind();
        let mut out = Transition::default();
        match input {
            Input::CustomerMessage(inbound) => {
                self.customer_message(&mut out, inbound, now, config);
            }
            Input::Tick => self.tick(&mut out, now, config),
            Input::ThreadTaken => {
                self.set_paused(&mut out, true, now);
            }
            Input::ThreadReturned => {
                if self.set_paused(&mut out, false, now) {
                    // Started while another app held the thread: the privacy notice was not
                    // sent.
                    if !self.privacy_notice_sent {
                        if let Some(text) = &config.privacy_notice {
                            self.privacy_notice_sent = true;
                            out.privacy_notice(now, text);
                        }
                    }
                    // Waiting in the queue while another app held the thread: offer it now.
                    if self.awaits_offer() {
                        self.prune_declined(now, config);
                        let prefer = self.affinity.clone();
                        self.request_offer(&mut out, prefer, now, config);
                    }
                }
            }
            Input::Thread { event, at } => self.thread_event(&mut out, event, at, now, config),
            Input::OfferTo(agent) => self.offer_to(&mut out, agent, now, config)?,
            Input::Accept(agent) => self.accept(&mut out, &agent, now)?,
            Input::Reject(agent) => self.reject(&mut out, &agent, now, config)?,
            Input::Pick(agent) => self.pick(&mut out, &agent, now)?,
            Input::Transfer { agent, to, note } => {
                self.transfer_to(&mut out, agent, to, note, now, config)?;
            }
            Input::Consult { agent, consultant } => {
                self.require_holder(&agent, StateKind::Active, input_kind)?;
                if consultant == agent || self.consultants.contains(&consultant) {
                    return Err(TransitionError::AlreadyTakesPart { agent: consultant });
                }
                self.consultants.push(consultant.clone());
                out.lines.push(line(
                    now,
                    Author::Agent(agent),
                    LineBody::Internal(Internal::ConsultInvited {
                        consultant: consultant.clone(),
                    }),
                ));
                out.effect(Effect::ConsultInvited { agent: consultant });
            }
            Input::LeaveConsult(agent) => {
                let Some(at) = self.consultants.iter().position(|c| *c == agent) else {
                    return Err(TransitionError::NotConsulted { agent });
                };
                self.consultants.remove(at);
                out.lines.push(line(
                    now,
                    Author::Agent(agent),
                    LineBody::Internal(Internal::ConsultLeft),
                ));
            }
            Input::Note { author, text } => {
                if let NoteAuthor::Agent(agent) = &author {
                    self.may_note(agent)?;
                }
                out.lines.push(line(
                    now,
                    author.into(),
                    LineBody::Internal(Internal::Note(text)),
                ));
            }
            Input::LinkRecord { by, record } => {
                if let Some(agent) = &by {
                    self.may_note(agent)?;
                }
                if self.customer_record != record {
                    self.customer_record.clone_from(&record);
                    out.lines.push(line(
                        now,
                        by.map_or(Author::System, Author::Agent),
                        LineBody::Internal(Internal::RecordLinked { record }),
                    ));
                }
            }
            Input::Assign { supervisor, agent } => {
                self.assign(&mut out, supervisor, agent, now)?;
            }
            Input::ForceClose { supervisor } => {
                self.close(&mut out, CloseReason::Supervisor);
                self.last_activity_at = now;
                out.lines.push(line(
                    now,
                    Author::Supervisor(supervisor),
                    LineBody::Internal(Internal::ForceClosed),
                ));
            }
            Input::CloseOutsideHours => match &self.state {
                State::Open { .. } => {
                    self.close(&mut out, CloseReason::OutsideHours);
                    out.notice(
                        now,
                        "closed: it started outside the queue's operating hours",
                    );
                }
                other => {
                    return Err(TransitionError::Illegal {
                        state: other.kind(),
                        input: input_kind,
                    });
                }
            },
            Input::Automated { trigger, text } => {
                out.add_automated(now, trigger, text);
                if trigger == AutomatedTrigger::NoAgentAvailable {
                    self.told_no_agent = true;
                }
            }
            Input::AgentSend { agent, message } => {
                self.may_send(&agent)?;
                self.last_activity_at = now;
                // A reaction's line is written once it is sent (the engine's delivery): the
                // desk paints it on the message, so one that fails must never show.
                if !matches!(message, Outgoing::Reaction { .. }) {
                    out.lines
                        .push(line(now, Author::Agent(agent.clone()), message.line_body()));
                }
                out.effect(Effect::Send {
                    agent: Some(agent),
                    message,
                });
            }
            Input::End(agent) => {
                self.require_holder(&agent, StateKind::Active, input_kind)?;
                self.state = State::WrapUp {
                    agent: agent.clone(),
                };
                self.last_activity_at = now;
                out.notice(now, format!("{agent} ended the conversation"));
            }
            Input::CloseSession(agent) => match &self.state {
                State::Active { agent: holder } if *holder == agent => {
                    self.state = State::Waiting {
                        agent: agent.clone(),
                    };
                    self.last_activity_at = now;
                    out.effect(Effect::SessionReleased {
                        agent: agent.clone(),
                    });
                    out.notice(
                        now,
                        format!("{agent} closed the session; the conversation is waiting"),
                    );
                }
                State::WrapUp { agent: holder } if *holder == agent => {
                    self.state = State::Closed {
                        reason: CloseReason::Agent,
                    };
                    self.last_activity_at = now;
                    out.effect(Effect::SessionReleased {
                        agent: agent.clone(),
                    });
                    out.notice(now, format!("{agent} closed the conversation"));
                }
                State::Active { agent: holder } | State::WrapUp { agent: holder } => {
                    return Err(TransitionError::NotHolder {
                        agent,
                        holder: Some(holder.clone()),
                    });
                }
                other => {
                    return Err(TransitionError::Illegal {
                        state: other.kind(),
                        input: input_kind,
                    });
                }
            },
            Input::Revive(agent) => match &self.state {
                State::Waiting { agent: holder } if *holder == agent => {
                    self.state = State::Active {
                        agent: agent.clone(),
                    };
                    self.last_activity_at = now;
                    out.effect(Effect::SessionStarted {
                        agent: agent.clone(),
                    });
                    out.notice(now, format!("{agent} reopened the session"));
                }
                State::Waiting { agent: holder } => {
                    return Err(TransitionError::NotHolder {
                        agent,
                        holder: Some(holder.clone()),
                    });
                }
                other => {
                    return Err(TransitionError::Illegal {
                        state: other.kind(),
                        input: input_kind,
                    });
                }
            },
        }
        // Affinity lasts while it waits in the queue after the revive.
        if !matches!(self.state, State::Open { .. }) {
            self.affinity = None;
        }
        // A consult lasts as long as the session it was made in.
        if !self.consultants.is_empty() && self.state.kind() != StateKind::Active {
            self.consultants.clear();
            out.notice(now, "the consult ended with the session");
        }
        Ok(out)
    }

    /// Whether `agent` may write an internal note: they hold (or held, Waiting) its session,
    /// or are consulted.
    fn may_note(&self, agent: &AgentId) -> Result<(), TransitionError> {
        let holder = match &self.state {
            State::Active { agent } | State::WrapUp { agent } | State::Waiting { agent } => {
                Some(agent)
            }
            _ => None,
        };
        if holder == Some(agent) || self.consultants.contains(agent) {
            Ok(())
        } else {
            Err(TransitionError::NotHolder {
                agent: agent.clone(),
                holder: holder.cloned(),
            })
        }
    }

    /// The holder transfers the Active conversation: their session ends; an agent is
    /// offered it, or the queue routes it.
    fn transfer_to(
        &mut self,
        out: &mut Transition,
        agent: AgentId,
        to: TransferTarget,
        note: Option<String>,
        now: SystemTime,
        config: &ConversationConfig,
    ) -> Result<(), TransitionError> {
        self.require_holder(&agent, StateKind::Active, InputKind::Transfer)?;
        if to == TransferTarget::Agent(agent.clone()) {
            return Err(TransitionError::AlreadyTakesPart { agent });
        }
        out.effect(Effect::SessionReleased {
            agent: agent.clone(),
        });
        out.lines.push(line(
            now,
            Author::Agent(agent.clone()),
            LineBody::Internal(Internal::Transferred {
                to: to.clone(),
                note: note.clone(),
            }),
        ));
        self.last_activity_at = now;
        self.queued_at = Some(now);
        self.transfer = Some(Transfer {
            from: agent.clone(),
            to: to.clone(),
            note,
            at: now,
        });
        self.prune_declined(now, config);
        match to {
            TransferTarget::Agent(target) => {
                let offer = Offer {
                    agent: target,
                    offered_at: now,
                    expires_at: saturating_add(now, config.offer_timeout),
                };
                self.state = State::Open {
                    offer: Some(offer.clone()),
                };
                out.effect(Effect::NotifyOffer(offer));
            }
            TransferTarget::Queue(queue) => {
                self.queue = Some(queue);
                self.state = State::Open { offer: None };
                // Not offered back to the agent who transferred it, for the re-offer interval.
                self.declined.push(Declined { agent, at: now });
                if !self.paused {
                    self.request_offer(out, None, now, config);
                }
            }
        }
        Ok(())
    }

    /// A supervisor assigns the Open conversation to an agent.
    fn assign(
        &mut self,
        out: &mut Transition,
        supervisor: AgentId,
        agent: AgentId,
        now: SystemTime,
    ) -> Result<(), TransitionError> {
        let State::Open { offer } = &self.state else {
            return Err(TransitionError::Illegal {
                state: self.state.kind(),
                input: InputKind::Assign,
            });
        };
        let offered = offer.as_ref().map(|o| (o.agent.clone(), o.expires_at));
        // The session first, as for an accepted offer: a reservation of the same agent
        // becomes it.
        out.effect(Effect::SessionStarted {
            agent: agent.clone(),
        });
        if let Some((offered, expires_at)) = offered {
            if offered != agent {
                out.effect(Effect::WithdrawOffer {
                    agent: offered.clone(),
                });
            }
            out.effect(Effect::offer_ended(offered, expires_at));
        }
        self.state = State::Active {
            agent: agent.clone(),
        };
        self.previous_agent = Some(agent.clone());
        self.last_activity_at = now;
        self.transfer = None;
        out.lines.push(line(
            now,
            Author::Supervisor(supervisor),
            LineBody::Internal(Internal::Assigned { agent }),
        ));
        Ok(())
    }

    /// Closes the conversation, undoing what its state held (an offer, a session).
    fn close(&mut self, out: &mut Transition, reason: CloseReason) {
        out.effects
            .retain(|e| !matches!(e, Effect::RequestOffer { .. }));
        match &self.state {
            State::Open { offer: Some(o) } => {
                out.effect(Effect::WithdrawOffer {
                    agent: o.agent.clone(),
                });
                out.effect(Effect::offer_ended(o.agent.clone(), o.expires_at));
            }
            State::Active { agent } | State::WrapUp { agent } => {
                out.effect(Effect::SessionReleased {
                    agent: agent.clone(),
                });
            }
            _ => {}
        }
        self.transfer = None;
        self.state = State::Closed { reason };
    }

    fn prune_declined(&mut self, now: SystemTime, config: &ConversationConfig) {
        self.declined.retain(|d| reoffer_from(d, config) > now);
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

    /// Records what happened in the thread besides a customer's message. The lifecycle, the
    /// messaging window and the timers stay as they are: a reaction, an edit or a receipt is
    /// not a message (Messenger opens the window on messages and postbacks). `at` is the
    /// event's own time: it names the event (the same in every redelivery, whatever `now`
    /// is), and is shown clamped to `now`.
    fn thread_event(
        &mut self,
        out: &mut Transition,
        event: ThreadEvent,
        at: SystemTime,
        now: SystemTime,
        config: &ConversationConfig,
    ) {
        if let Some(digest) = event_digest(&event, at) {
            // The same reaction, edit or removal again (a redelivery the inbox no longer
            // knew): one change, already recorded.
            if self.recent_events.contains(&digest) {
                return;
            }
            if self.recent_events.len() >= super::RECENT_THREAD_EVENTS {
                self.recent_events.pop_front();
            }
            self.recent_events.push_back(digest);
        }
        let at = at.min(now);
        match event {
            ThreadEvent::Reaction(reaction) => {
                out.lines
                    .push(line(at, Author::Customer, LineBody::Reaction(reaction)));
            }
            ThreadEvent::Edit {
                mid,
                text,
                edit_count,
            } => out.lines.push(line(
                at,
                Author::Customer,
                LineBody::Edit {
                    of: mid,
                    text,
                    edit_count,
                },
            )),
            ThreadEvent::Unsent { mid } => {
                out.lines.push(line(
                    at,
                    Author::Customer,
                    LineBody::Unsent { of: mid.clone() },
                ));
                if !config.keep_unsent {
                    out.effect(Effect::ForgetMessage { mid });
                }
            }
            ThreadEvent::Outside {
                author,
                mid,
                lines,
                reply_to,
            } => push_lines(out, &author, mid, reply_to, lines, at),
            // A watermark is never past the event that carries it (nor past `now`, which `at`
            // already is not): a watermark from a skewed or forged clock cannot mark later
            // messages read.
            ThreadEvent::Delivered { watermark } => {
                let watermark = watermark.min(at);
                self.delivered_until =
                    Some(self.delivered_until.map_or(watermark, |w| w.max(watermark)));
            }
            ThreadEvent::Read { watermark } => {
                let watermark = watermark.min(at);
                self.read_until = Some(self.read_until.map_or(watermark, |w| w.max(watermark)));
            }
        }
    }

    fn customer_message(
        &mut self,
        out: &mut Transition,
        inbound: Inbound,
        now: SystemTime,
        config: &ConversationConfig,
    ) {
        let sent = inbound.time(now);
        let standby = inbound.standby;
        push_customer_lines(out, inbound, now);
        if standby && !self.paused {
            self.paused = true;
            out.notice(now, STANDBY_NOTICE);
        }
        self.last_customer_message_at =
            Some(self.last_customer_message_at.map_or(sent, |t| t.max(sent)));
        self.last_activity_at = self.last_activity_at.max(sent);
        if self.awaits_offer() {
            self.prune_declined(now, config);
            let prefer = self.affinity.clone();
            self.request_offer(out, prefer, now, config);
        } else if let State::Waiting { agent } = &self.state {
            let prefer = config.agent_affinity.then(|| agent.clone());
            self.affinity.clone_from(&prefer);
            self.prune_declined(now, config);
            self.state = State::Open { offer: None };
            self.queued_at = Some(now);
            out.notice(
                now,
                "the customer wrote again; the conversation is back in the queue",
            );
            if !self.paused {
                self.request_offer(out, prefer, now, config);
            }
        }
    }

    fn offer_to(
        &mut self,
        out: &mut Transition,
        agent: AgentId,
        now: SystemTime,
        config: &ConversationConfig,
    ) -> Result<(), TransitionError> {
        match &self.state {
            State::Open { offer: None } => {
                if let Some(d) = self
                    .recent_declines(now, config)
                    .rev()
                    .find(|d| d.agent == agent)
                {
                    return Err(TransitionError::RecentlyDeclined {
                        agent,
                        until: reoffer_from(d, config),
                    });
                }
                let offer = Offer {
                    agent,
                    offered_at: now,
                    expires_at: saturating_add(now, config.offer_timeout),
                };
                self.affinity = None;
                self.state = State::Open {
                    offer: Some(offer.clone()),
                };
                out.effect(Effect::NotifyOffer(offer));
                Ok(())
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
        out: &mut Transition,
        agent: &AgentId,
        now: SystemTime,
    ) -> Result<(), TransitionError> {
        match &self.state {
            State::Open { offer: Some(o) } if o.agent == *agent => {
                if now >= o.expires_at {
                    return Err(TransitionError::OfferExpired {
                        agent: agent.clone(),
                        expired_at: o.expires_at,
                    });
                }
                let expires_at = o.expires_at;
                self.state = State::Active {
                    agent: agent.clone(),
                };
                self.previous_agent = Some(agent.clone());
                self.last_activity_at = now;
                // The session first: a router turns the offer's reservation into it, so the
                // agent's capacity is never free in between for another instance to take.
                out.effect(Effect::SessionStarted {
                    agent: agent.clone(),
                });
                out.effect(Effect::offer_ended(agent.clone(), expires_at));
                if self.transfer.take().is_some() {
                    out.notice(now, format!("{agent} accepted the transfer"));
                } else {
                    out.notice(now, format!("{agent} accepted the conversation"));
                }
                Ok(())
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

    fn pick(
        &mut self,
        out: &mut Transition,
        agent: &AgentId,
        now: SystemTime,
    ) -> Result<(), TransitionError> {
        match &self.state {
            State::Open { offer: Some(o) } => Err(TransitionError::OfferOutstanding {
                agent: o.agent.clone(),
            }),
            State::Open { offer: None } if self.paused => Err(TransitionError::ThreadPaused),
            State::Open { offer: None } => {
                self.state = State::Active {
                    agent: agent.clone(),
                };
                self.previous_agent = Some(agent.clone());
                self.last_activity_at = now;
                out.effect(Effect::SessionStarted {
                    agent: agent.clone(),
                });
                self.transfer = None;
                out.notice(now, format!("{agent} picked the conversation"));
                Ok(())
            }
            other => Err(TransitionError::Illegal {
                state: other.kind(),
                input: InputKind::Pick,
            }),
        }
    }

    fn reject(
        &mut self,
        out: &mut Transition,
        agent: &AgentId,
        now: SystemTime,
        config: &ConversationConfig,
    ) -> Result<(), TransitionError> {
        match &self.state {
            State::Open { offer: Some(o) } if o.agent == *agent => {
                let expires_at = o.expires_at;
                self.state = State::Open { offer: None };
                self.prune_declined(now, config);
                self.declined.push(Declined {
                    agent: agent.clone(),
                    at: now,
                });
                out.effect(Effect::offer_ended(agent.clone(), expires_at));
                out.notice(now, format!("{agent} declined the conversation"));
                if let Some(presence) = config.presence_after_rejected_offer {
                    out.effect(Effect::SetPresence {
                        agent: agent.clone(),
                        presence,
                        ended_at: now,
                    });
                }
                self.transfer_lapsed(out, agent, now);
                self.request_offer(out, None, now, config);
                Ok(())
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

    fn tick(&mut self, out: &mut Transition, now: SystemTime, config: &ConversationConfig) {
        // An expired offer goes back to the queue first, so that auto-close withdraws nothing
        // twice.
        if let State::Open { offer: Some(o) } = &self.state {
            if now >= o.expires_at {
                let agent = o.agent.clone();
                let expires_at = o.expires_at;
                self.state = State::Open { offer: None };
                self.prune_declined(now, config);
                self.declined.push(Declined {
                    agent: agent.clone(),
                    at: now,
                });
                out.effect(Effect::WithdrawOffer {
                    agent: agent.clone(),
                });
                out.effect(Effect::offer_ended(agent.clone(), expires_at));
                out.notice(now, format!("the offer to {agent} timed out"));
                if let Some(presence) = config.presence_after_missed_offer {
                    out.effect(Effect::SetPresence {
                        agent: agent.clone(),
                        presence,
                        ended_at: now,
                    });
                }
                self.transfer_lapsed(out, &agent, now);
                self.request_offer(out, None, now, config);
            }
        }
        let (after, reason) = match &self.state {
            State::Open { .. } | State::Active { .. } => {
                (config.auto_close_open_active, CloseReason::AutoClose)
            }
            State::WrapUp { .. } => (config.auto_close_wrap_up, CloseReason::AutoClose),
            State::Waiting { .. } => (config.waiting_inactivity, CloseReason::Inactivity),
            State::Closed { .. } => return,
        };
        if now < saturating_add(self.last_activity_at, after) {
            return;
        }
        // Closing: undo what the state held.
        self.close(out, reason);
        out.notice(
            now,
            if reason == CloseReason::Inactivity {
                "closed after inactivity"
            } else {
                "closed automatically"
            },
        );
    }

    /// A transfer to `agent` that they declined or let lapse: the conversation is an
    /// ordinary one of its queue again (the transferring agent's).
    fn transfer_lapsed(&mut self, out: &mut Transition, agent: &AgentId, now: SystemTime) {
        if let Some(t) = &self.transfer {
            if t.to == TransferTarget::Agent(agent.clone()) {
                self.transfer = None;
                out.notice(
                    now,
                    "the transfer was not taken; the conversation is back in its queue",
                );
            }
        }
    }

    /// Pauses or resumes; whether that changed anything.
    fn set_paused(&mut self, out: &mut Transition, paused: bool, now: SystemTime) -> bool {
        if self.paused == paused {
            return false;
        }
        self.paused = paused;
        out.notice(
            now,
            if paused {
                "another app or the Page inbox took the thread; sending is paused"
            } else {
                "the thread was passed back; sending resumed"
            },
        );
        true
    }
}

/// What names a reaction, an edit or a removal, whatever envelope it came in: the reaction
/// (message, emoji or name, removed or not) at its own time (never clamped: a clock behind
/// the platform's must not name a redelivery anew), the edit by its message, count and text
/// (a count the platform left out reads 0, and each edit still differs by its text), the
/// removal by its message. `None` for other events (an outside reply has its own id,
/// receipts are watermarks).
fn event_digest(event: &ThreadEvent, at: SystemTime) -> Option<String> {
    use sha2::Digest as _;
    let name = match event {
        ThreadEvent::Reaction(r) => serde_json::json!(["reaction", r, crate::time::millis(at)]),
        ThreadEvent::Edit {
            mid,
            edit_count,
            text,
        } => serde_json::json!(["edit", mid, edit_count, text]),
        ThreadEvent::Unsent { mid } => serde_json::json!(["unsent", mid]),
        _ => return None,
    };
    let digest = sha2::Sha256::digest(name.to_string().as_bytes());
    Some(crate::webhook::signature::to_hex(&digest[..8]))
}

/// When the agent who declined may be offered the conversation again.
fn reoffer_from(declined: &Declined, config: &ConversationConfig) -> SystemTime {
    saturating_add(declined.at, config.reoffer_interval)
}

/// The notice for a message that arrived on `standby`.
const STANDBY_NOTICE: &str =
    "the customer wrote while another app or the Page inbox holds the thread; sending is paused";

fn push_customer_lines(out: &mut Transition, inbound: Inbound, now: SystemTime) {
    push_lines(
        out,
        &Author::Customer,
        inbound.mid,
        inbound.reply_to,
        inbound.lines,
        inbound.sent_at.map_or(now, |at| at.min(now)),
    );
}

/// A message's lines: each carries its id (so that forgetting a removed message finds all of
/// them, its files too), the first the message it answers; accepted files are fetched. A notice among the lines of the Page's message (sent from outside the
/// channel) is the channel's, not the Page's: it is authored [`Author::System`].
fn push_lines(
    out: &mut Transition,
    author: &Author,
    mut mid: Option<String>,
    mut reply_to: Option<String>,
    lines: Vec<LineBody>,
    at: SystemTime,
) {
    let last = lines.len().saturating_sub(1);
    for (i, body) in lines.into_iter().enumerate() {
        if let LineBody::File(FileLine {
            url: Some(url),
            media: MediaState::Pending,
            ..
        }) = &body
        {
            out.effect(Effect::FetchMedia {
                url: url.clone(),
                sent_at: at,
            });
        }
        let author = match (author, &body) {
            (Author::PageInbox | Author::App(_), LineBody::Notice(_)) => Author::System,
            _ => author.clone(),
        };
        out.lines.push(TranscriptLine {
            at,
            author,
            body,
            mid: if i == last { mid.take() } else { mid.clone() },
            reply_to: reply_to.take(),
            sent_at: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_718_000_000)
    }

    fn secs(n: u64) -> SystemTime {
        t0() + Duration::from_secs(n)
    }

    fn a() -> AgentId {
        AgentId::from("alice")
    }

    fn b() -> AgentId {
        AgentId::from("bob")
    }

    fn config() -> ConversationConfig {
        ConversationConfig::default()
    }

    fn text(mid: &str) -> Inbound {
        Inbound::new(Some(mid.into()), vec![LineBody::Text("hi".into())])
    }

    fn started(first: Inbound, config: &ConversationConfig) -> (Conversation, Transition) {
        Conversation::start(
            ConversationId::from("c1"),
            PageId::from("p"),
            UserId::from("u"),
            first,
            t0(),
            config,
        )
    }

    fn open() -> Conversation {
        started(text("m0"), &config()).0
    }

    /// `c` after `inputs`, each at `at`.
    fn after(mut c: Conversation, at: SystemTime, inputs: Vec<Input>) -> Conversation {
        for input in inputs {
            c.apply(input, at, &config()).unwrap();
        }
        c
    }

    fn active(agent: &AgentId) -> Conversation {
        after(
            open(),
            t0(),
            vec![Input::OfferTo(agent.clone()), Input::Accept(agent.clone())],
        )
    }

    fn send(agent: &AgentId) -> Input {
        Input::AgentSend {
            agent: agent.clone(),
            message: Outgoing::Text("x".into()),
        }
    }

    /// Applies `event` at its time `at`, handled at `now`; the lines it added.
    fn thread(c: &mut Conversation, event: ThreadEvent, at: SystemTime, now: SystemTime) -> usize {
        c.apply(Input::Thread { event, at }, now, &config())
            .unwrap()
            .lines
            .len()
    }

    /// A reaction stamped ahead of this instance's clock (the platform's clock runs ahead)
    /// is named by its own time: delivered again later, once the clock has passed it, it is
    /// the same reaction, recorded once. It is shown at the time it was handled.
    #[test]
    fn a_reaction_from_ahead_of_the_clock_is_recorded_once() {
        let mut c = active(&a());
        let like = ThreadEvent::Reaction(crate::conversation::ReactionLine::new(
            Some("m0".into()),
            Some("\u{1F44D}".into()),
            false,
        ));
        let out = c
            .apply(
                Input::Thread {
                    event: like.clone(),
                    at: secs(50),
                },
                secs(10),
                &config(),
            )
            .unwrap();
        assert_eq!(out.lines.len(), 1);
        assert_eq!(out.lines[0].at, secs(10), "shown no later than handled");
        assert_eq!(thread(&mut c, like.clone(), secs(50), secs(20)), 0);
        assert_eq!(thread(&mut c, like.clone(), secs(50), secs(90)), 0);
        // The same emoji again at another time is another reaction.
        assert_eq!(thread(&mut c, like, secs(60), secs(90)), 1);
    }

    /// Edits whose count the platform left out (it reads 0) differ by their text: each is
    /// recorded, and each one delivered again is recorded once.
    #[test]
    fn edits_without_a_count_are_told_apart_by_their_text() {
        let mut c = active(&a());
        let edit = |text: &str| ThreadEvent::Edit {
            mid: "m0".into(),
            text: text.into(),
            edit_count: 0,
        };
        assert_eq!(thread(&mut c, edit("hello"), secs(1), secs(1)), 1);
        assert_eq!(thread(&mut c, edit("hello there"), secs(2), secs(2)), 1);
        assert_eq!(thread(&mut c, edit("hello"), secs(1), secs(3)), 0);
        assert_eq!(thread(&mut c, edit("hello there"), secs(2), secs(3)), 0);
    }

    fn notices(out: &Transition) -> Vec<&str> {
        out.lines
            .iter()
            .filter_map(|l| match &l.body {
                LineBody::Notice(n) => Some(n.as_str()),
                _ => None,
            })
            .collect()
    }

    fn requests(out: &Transition) -> Vec<(Vec<AgentId>, Option<AgentId>)> {
        out.effects
            .iter()
            .filter_map(|e| match e {
                Effect::RequestOffer { exclude, prefer } => Some((exclude.clone(), prefer.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn accepting_starts_the_session_before_the_offer_ends() {
        let mut c = after(open(), t0(), vec![Input::OfferTo(a())]);
        assert_eq!(
            c.clone().apply(Input::Accept(b()), secs(1), &config()),
            Err(TransitionError::NotOfferedTo {
                agent: b(),
                offered_to: Some(a())
            }),
            "only the agent offered accepts"
        );
        let out = c.apply(Input::Accept(a()), secs(1), &config()).unwrap();
        assert_eq!(
            out.effects,
            [
                Effect::SessionStarted { agent: a() },
                Effect::offer_ended(a(), t0() + config().offer_timeout)
            ]
        );
    }

    #[test]
    fn a_queued_conversation_is_picked_into_a_session() {
        let mut c = open();
        let out = c.apply(Input::Pick(b()), secs(3), &config()).unwrap();
        assert_eq!(c.state(), &State::Active { agent: b() });
        assert_eq!(c.previous_agent(), Some(&b()));
        assert_eq!(c.last_activity_at(), secs(3));
        assert_eq!(out.effects, [Effect::SessionStarted { agent: b() }]);
        assert_eq!(notices(&out), ["bob picked the conversation"]);
        assert_eq!(Input::Pick(b()).kind(), InputKind::Pick);
    }

    #[test]
    fn only_a_conversation_waiting_in_the_queue_can_be_picked() {
        let offered = after(open(), t0(), vec![Input::OfferTo(a())]);
        assert_eq!(
            offered.clone().apply(Input::Pick(b()), t0(), &config()),
            Err(TransitionError::OfferOutstanding { agent: a() })
        );
        let paused = after(open(), t0(), vec![Input::ThreadTaken]);
        assert_eq!(
            paused.clone().apply(Input::Pick(b()), t0(), &config()),
            Err(TransitionError::ThreadPaused)
        );
        for (c, state) in [
            (active(&a()), StateKind::Active),
            (
                after(active(&a()), t0(), vec![Input::CloseSession(a())]),
                StateKind::Waiting,
            ),
            (
                after(active(&a()), t0(), vec![Input::End(a())]),
                StateKind::WrapUp,
            ),
        ] {
            let before = c.clone();
            let mut c = c;
            assert_eq!(
                c.apply(Input::Pick(b()), t0(), &config()),
                Err(TransitionError::Illegal {
                    state,
                    input: InputKind::Pick
                })
            );
            assert_eq!(c, before, "nothing changed");
        }
        let mut closed = after(
            active(&a()),
            t0(),
            vec![Input::End(a()), Input::CloseSession(a())],
        );
        assert_eq!(
            closed.apply(Input::Pick(b()), t0(), &config()),
            Err(TransitionError::Closed {
                input: InputKind::Pick
            })
        );
    }

    #[test]
    fn a_conversation_starts_in_its_queue() {
        let (c, out) = Conversation::start_in_queue(
            Some(QueueId::from("billing")),
            ConversationId::from("c1"),
            PageId::from("p"),
            UserId::from("u"),
            text("m0"),
            t0(),
            &config(),
        );
        assert_eq!(c.queue(), Some(&QueueId::from("billing")));
        assert_eq!(requests(&out).len(), 1);
        assert_eq!(open().queue(), None);
        // Saved before queues existed: no queue, read as the fallback's.
        let mut json: serde_json::Value = serde_json::to_value(&c).unwrap();
        json.as_object_mut().unwrap().remove("queue");
        let old: Conversation = serde_json::from_value(json).unwrap();
        assert_eq!(old.queue(), None);
        assert!(!serde_json::to_string(&open()).unwrap().contains("queue"));
    }

    #[test]
    fn may_send_only_for_the_holder_of_an_active_unpaused_session() {
        assert_eq!(active(&a()).may_send(&a()), Ok(()));
        assert_eq!(
            active(&a()).may_send(&b()),
            Err(SendRefusal::NotHolder {
                agent: b(),
                holder: a()
            })
        );
        let paused = after(active(&a()), t0(), vec![Input::ThreadTaken]);
        assert_eq!(paused.may_send(&a()), Err(SendRefusal::ThreadPaused));
        // Another holder is named before the pause.
        assert!(matches!(
            paused.may_send(&b()),
            Err(SendRefusal::NotHolder { .. })
        ));
        let cases = [
            (open(), StateKind::Open),
            (
                after(open(), t0(), vec![Input::OfferTo(a())]),
                StateKind::Open,
            ),
            (
                after(active(&a()), t0(), vec![Input::CloseSession(a())]),
                StateKind::Waiting,
            ),
            (
                after(active(&a()), t0(), vec![Input::End(a())]),
                StateKind::WrapUp,
            ),
        ];
        for (c, state) in cases {
            assert_eq!(c.may_send(&a()), Err(SendRefusal::NoSession { state }));
        }
        let closed = after(
            active(&a()),
            t0(),
            vec![Input::End(a()), Input::CloseSession(a())],
        );
        assert_eq!(closed.may_send(&a()), Err(SendRefusal::Closed));
    }

    #[test]
    fn the_machine_refuses_sends_as_may_send_does() {
        let closed = after(
            active(&a()),
            t0(),
            vec![Input::End(a()), Input::CloseSession(a())],
        );
        for c in [
            open(),
            active(&a()),
            after(active(&a()), t0(), vec![Input::ThreadTaken]),
            after(active(&a()), t0(), vec![Input::End(a())]),
            after(active(&a()), t0(), vec![Input::CloseSession(a())]),
            closed,
        ] {
            for agent in [a(), b()] {
                let expected = c.may_send(&agent).map_err(TransitionError::from);
                let got = transition(&c, send(&agent), t0(), &config()).map(drop);
                assert_eq!(got, expected, "{:?} by {agent}", c.state());
            }
        }
    }

    #[test]
    fn refusals_read_for_an_agent() {
        let said = |r: SendRefusal| r.to_string();
        assert_eq!(
            said(SendRefusal::Closed),
            "the conversation is closed: the customer's next message starts a new one"
        );
        assert_eq!(
            said(SendRefusal::NotHolder {
                agent: b(),
                holder: a()
            }),
            "agent alice holds this conversation, not bob"
        );
        assert_eq!(
            said(SendRefusal::ThreadPaused),
            "another app holds the Messenger thread; sending is paused until it is passed back"
        );
        for (state, text) in [
            (
                StateKind::Open,
                "the conversation is in the queue: accept it before writing",
            ),
            (
                StateKind::Waiting,
                "the session is closed: reopen it before writing",
            ),
            (
                StateKind::WrapUp,
                "the conversation has ended and is in wrap-up: nothing more is sent",
            ),
            (
                StateKind::Active,
                "no session is active in this conversation",
            ),
        ] {
            assert_eq!(said(SendRefusal::NoSession { state }), text);
        }
        // The machine's errors for the same refusals.
        assert_eq!(
            TransitionError::from(SendRefusal::Closed),
            TransitionError::Closed {
                input: InputKind::AgentSend
            }
        );
        assert_eq!(
            TransitionError::from(SendRefusal::NoSession {
                state: StateKind::Waiting
            }),
            TransitionError::Illegal {
                state: StateKind::Waiting,
                input: InputKind::AgentSend
            }
        );
        assert_eq!(
            TransitionError::from(SendRefusal::NotHolder {
                agent: b(),
                holder: a()
            }),
            TransitionError::NotHolder {
                agent: b(),
                holder: Some(a())
            }
        );
        assert_eq!(
            TransitionError::from(SendRefusal::ThreadPaused),
            TransitionError::ThreadPaused
        );
    }

    #[test]
    fn an_agents_message_is_recorded_and_sent() {
        let mut c = active(&a());
        let file = Outgoing::File {
            media_key: "k1".into(),
            name: "photo.png".into(),
            mime: "image/png".into(),
        };
        let out = c
            .apply(
                Input::AgentSend {
                    agent: a(),
                    message: file.clone(),
                },
                secs(5),
                &config(),
            )
            .unwrap();
        assert_eq!(
            out.lines,
            [TranscriptLine {
                at: secs(5),
                author: Author::Agent(a()),
                body: LineBody::File(FileLine {
                    name: "photo.png".into(),
                    kind: "image".into(),
                    url: None,
                    media_key: Some("k1".into()),
                    size: None,
                    rejected: None,
                    media: MediaState::Stored,
                }),
                mid: None,
                reply_to: None,
                sent_at: None,
            }]
        );
        assert_eq!(
            out.effects,
            [Effect::Send {
                agent: Some(a()),
                message: file
            }]
        );
        assert_eq!(c.last_activity_at(), secs(5));
        let out = c.apply(send(&a()), secs(6), &config()).unwrap();
        assert_eq!(out.lines[0].body, LineBody::Text("x".into()));
    }

    #[test]
    fn excluded_agents_are_those_who_declined_within_the_interval() {
        let cfg = config();
        let interval = cfg.reoffer_interval.as_secs();
        let c = after(open(), t0(), vec![Input::OfferTo(a()), Input::Reject(a())]);
        let c = after(c, secs(10), vec![Input::OfferTo(b())]);
        let c = after(c, secs(10 + 120), vec![Input::Tick]);
        assert_eq!(
            c.declined(),
            [
                Declined {
                    agent: a(),
                    at: t0()
                },
                Declined {
                    agent: b(),
                    at: secs(130)
                }
            ]
        );
        let excluded = |at| c.excluded_agents(at, &cfg).cloned().collect::<Vec<_>>();
        assert_eq!(excluded(secs(130)), [a(), b()]);
        assert_eq!(excluded(secs(interval - 1)), [a(), b()]);
        // At the end of the interval, a decline no longer counts.
        assert_eq!(excluded(secs(interval)), [b()]);
        assert_eq!(excluded(secs(130 + interval)), Vec::<AgentId>::new());
        // The machine refuses the offer for as long, and says until when.
        assert_eq!(
            transition(&c, Input::OfferTo(a()), secs(interval - 1), &cfg).unwrap_err(),
            TransitionError::RecentlyDeclined {
                agent: a(),
                until: secs(interval)
            }
        );
        assert!(transition(&c, Input::OfferTo(a()), secs(interval), &cfg).is_ok());
        // A request for an offer leaves them out.
        let (_, out) = transition(&c, Input::CustomerMessage(text("m1")), secs(140), &cfg).unwrap();
        assert_eq!(requests(&out), [(vec![a(), b()], None)]);
    }

    #[test]
    fn a_second_decline_counts_from_its_own_time() {
        let cfg = ConversationConfig {
            reoffer_interval: Duration::from_secs(100),
            offer_timeout: Duration::from_secs(1000),
            ..config()
        };
        let mut c = started(text("m0"), &cfg).0;
        c.apply(Input::OfferTo(a()), t0(), &cfg).unwrap();
        c.apply(Input::Reject(a()), t0(), &cfg).unwrap();
        c.apply(Input::OfferTo(a()), secs(100), &cfg).unwrap();
        c.apply(Input::Reject(a()), secs(150), &cfg).unwrap();
        // The first decline was pruned when the second was recorded.
        assert_eq!(
            c.declined(),
            [Declined {
                agent: a(),
                at: secs(150)
            }]
        );
        assert_eq!(
            transition(&c, Input::OfferTo(a()), secs(200), &cfg).unwrap_err(),
            TransitionError::RecentlyDeclined {
                agent: a(),
                until: secs(250)
            }
        );
        // A decline is dropped from the record at the very end of its interval.
        c.apply(Input::OfferTo(b()), secs(200), &cfg).unwrap();
        c.apply(Input::Reject(b()), secs(250), &cfg).unwrap();
        assert_eq!(
            c.declined(),
            [Declined {
                agent: b(),
                at: secs(250)
            }]
        );
    }

    #[test]
    fn awaits_offer_when_queued_without_an_offer_and_not_paused() {
        assert!(open().awaits_offer());
        assert!(!after(open(), t0(), vec![Input::OfferTo(a())]).awaits_offer());
        assert!(!after(open(), t0(), vec![Input::ThreadTaken]).awaits_offer());
        assert!(!active(&a()).awaits_offer());
        let (on_standby, out) = started(text("m0").on_standby(true), &config());
        assert!(!on_standby.awaits_offer());
        assert!(requests(&out).is_empty());
        let (back, out) = transition(&on_standby, Input::ThreadReturned, t0(), &config()).unwrap();
        assert!(back.awaits_offer());
        assert_eq!(requests(&out), [(vec![], None)]);
    }

    #[test]
    fn each_transition_moves_the_deadline() {
        let cfg = config();
        let c = open();
        assert_eq!(
            c.next_deadline(&cfg),
            Some(t0() + cfg.auto_close_open_active)
        );
        // A later customer message moves auto-close; an earlier `sent_at` does not go back.
        let (c, _) = transition(
            &c,
            Input::CustomerMessage(text("m1").sent_at(secs(50))),
            secs(60),
            &cfg,
        )
        .unwrap();
        assert_eq!(c.last_activity_at(), secs(50));
        assert_eq!(
            c.next_deadline(&cfg),
            Some(secs(50) + cfg.auto_close_open_active)
        );
        let (c, _) = transition(
            &c,
            Input::CustomerMessage(text("m2").sent_at(secs(10))),
            secs(70),
            &cfg,
        )
        .unwrap();
        assert_eq!(c.last_activity_at(), secs(50));
        assert_eq!(c.last_customer_message_at(), Some(secs(50)));
        // Offered: the offer's deadline comes first.
        let (c, _) = transition(&c, Input::OfferTo(a()), secs(100), &cfg).unwrap();
        assert_eq!(c.next_deadline(&cfg), Some(secs(100) + cfg.offer_timeout));
        // Accepted: auto-close from the acceptance.
        let (c, _) = transition(&c, Input::Accept(a()), secs(110), &cfg).unwrap();
        assert_eq!(
            c.next_deadline(&cfg),
            Some(secs(110) + cfg.auto_close_open_active)
        );
        // From Active: each input, and the deadline after it.
        let waiting = transition(&c, Input::CloseSession(a()), secs(130), &cfg)
            .unwrap()
            .0;
        let wrap_up = transition(&c, Input::End(a()), secs(150), &cfg).unwrap().0;
        for (from, input, at, after) in [
            (&c, send(&a()), 120, cfg.auto_close_open_active),
            (&c, Input::CloseSession(a()), 130, cfg.waiting_inactivity),
            (
                &waiting,
                Input::Revive(a()),
                140,
                cfg.auto_close_open_active,
            ),
            (&c, Input::End(a()), 150, cfg.auto_close_wrap_up),
        ] {
            let kind = input.kind();
            let (next, _) = transition(from, input, secs(at), &cfg).unwrap();
            assert_eq!(next.next_deadline(&cfg), Some(secs(at) + after), "{kind:?}");
        }
        let (closed, _) = transition(&wrap_up, Input::CloseSession(a()), secs(160), &cfg).unwrap();
        assert_eq!(closed.next_deadline(&cfg), None);
        assert_eq!(closed.last_activity_at(), secs(160));
    }

    #[test]
    fn an_offer_lapsing_at_auto_close_is_withdrawn_once() {
        let cfg = ConversationConfig {
            offer_timeout: Duration::from_secs(100),
            auto_close_open_active: Duration::from_secs(100),
            ..config()
        };
        let mut c = started(text("m0"), &cfg).0;
        c.apply(Input::OfferTo(a()), t0(), &cfg).unwrap();
        let out = c.apply(Input::Tick, secs(100), &cfg).unwrap();
        assert_eq!(
            c.state(),
            &State::Closed {
                reason: CloseReason::AutoClose
            }
        );
        assert_eq!(
            out.effects,
            [
                Effect::WithdrawOffer { agent: a() },
                Effect::offer_ended(a(), t0() + cfg.offer_timeout)
            ]
        );
        assert_eq!(
            notices(&out),
            ["the offer to alice timed out", "closed automatically"]
        );
    }

    #[test]
    fn an_outstanding_offer_is_withdrawn_at_auto_close() {
        let cfg = ConversationConfig {
            offer_timeout: Duration::from_secs(1000),
            auto_close_open_active: Duration::from_secs(100),
            ..config()
        };
        let mut c = started(text("m0"), &cfg).0;
        c.apply(Input::OfferTo(a()), t0(), &cfg).unwrap();
        assert_eq!(c.next_deadline(&cfg), Some(secs(100)));
        let out = c.apply(Input::Tick, secs(100), &cfg).unwrap();
        assert!(c.is_closed());
        assert_eq!(
            out.effects,
            [
                Effect::WithdrawOffer { agent: a() },
                Effect::offer_ended(a(), t0() + cfg.offer_timeout)
            ]
        );
        assert_eq!(notices(&out), ["closed automatically"]);
    }

    #[test]
    fn start_records_the_message_and_fetches_pending_files() {
        let file = FileLine {
            name: "photo.png".into(),
            kind: "image".into(),
            url: Some("https://cdn.example/p.png".into()),
            media_key: None,
            size: None,
            rejected: None,
            media: MediaState::Pending,
        };
        let first = Inbound::new(
            Some("m0".into()),
            vec![LineBody::Text("look".into()), LineBody::File(file.clone())],
        )
        .sent_at(secs(0));
        let cfg = ConversationConfig {
            privacy_notice: Some("recorded".into()),
            ..config()
        };
        let (c, out) = Conversation::start(
            ConversationId::from("c1"),
            PageId::from("p"),
            UserId::from("u"),
            first,
            secs(3),
            &cfg,
        );
        assert_eq!(c.id(), &ConversationId::from("c1"));
        assert_eq!(c.page(), &PageId::from("p"));
        assert_eq!(c.customer(), &UserId::from("u"));
        assert_eq!(c.created_at(), secs(3));
        assert_eq!(c.last_customer_message_at(), Some(t0()));
        assert!(c.privacy_notice_sent());
        assert!(!c.is_paused());
        assert_eq!(c.previous_agent(), None);
        // Both lines of the message carry its id (a removal forgets both); both are at the
        // customer's time. The privacy notice is not the customer's message.
        assert_eq!(
            out.lines
                .iter()
                .map(|l| (l.mid.as_deref(), l.at))
                .collect::<Vec<_>>(),
            [(Some("m0"), t0()), (Some("m0"), t0()), (None, secs(3))]
        );
        assert_eq!(out.lines[1].body, LineBody::File(file));
        assert_eq!(
            out.effects,
            [
                Effect::FetchMedia {
                    url: "https://cdn.example/p.png".into(),
                    sent_at: t0()
                },
                Effect::Send {
                    agent: None,
                    message: Outgoing::PrivacyNotice("recorded".into())
                },
                Effect::RequestOffer {
                    exclude: vec![],
                    prefer: None
                }
            ]
        );
    }

    #[test]
    fn a_standby_start_sends_the_notice_once_the_thread_comes_back() {
        let cfg = ConversationConfig {
            privacy_notice: Some("recorded".into()),
            ..config()
        };
        let (c, out) = started(text("m0").on_standby(true), &cfg);
        assert!(c.is_paused());
        assert!(!c.privacy_notice_sent());
        assert!(out.effects.is_empty());
        let (back, out) = transition(&c, Input::ThreadReturned, secs(1), &cfg).unwrap();
        assert!(back.privacy_notice_sent());
        assert_eq!(
            notices(&out),
            ["the thread was passed back; sending resumed", "recorded"]
        );
        // Passed back again: nothing changes and nothing is sent twice.
        let (same, out) = transition(&back, Input::ThreadReturned, secs(2), &cfg).unwrap();
        assert_eq!((same, out), (back.clone(), Transition::default()));
        let (taken, out) = transition(&back, Input::ThreadTaken, secs(2), &cfg).unwrap();
        assert!(taken.is_paused());
        assert!(out.effects.is_empty());
        let (again, out) = transition(&taken, Input::ThreadReturned, secs(3), &cfg).unwrap();
        assert!(!again.is_paused());
        assert!(!out.effects.iter().any(|e| matches!(e, Effect::Send { .. })));
    }

    #[test]
    fn a_customer_writing_to_a_waiting_conversation_requeues_it() {
        let affinity = ConversationConfig {
            agent_affinity: true,
            ..config()
        };
        let waiting = after(active(&a()), t0(), vec![Input::CloseSession(a())]);
        assert_eq!(waiting.previous_agent(), Some(&a()));
        let (open, out) = transition(
            &waiting,
            Input::CustomerMessage(text("m1")),
            secs(1),
            &affinity,
        )
        .unwrap();
        assert_eq!(open.state(), &State::Open { offer: None });
        assert_eq!(requests(&out), [(vec![], Some(a()))]);
        // The preference holds while it waits (a tick asks again with it), until an offer is
        // made, to anyone.
        assert_eq!(open.preferred_agent(), Some(&a()));
        let offered = after(open.clone(), secs(2), vec![Input::OfferTo(b())]);
        assert_eq!(offered.preferred_agent(), None);
        let lapsed = after(offered, secs(2) + affinity.offer_timeout, vec![Input::Tick]);
        assert_eq!(
            lapsed.preferred_agent(),
            None,
            "not after an offer was made"
        );
        let picked = after(open.clone(), secs(2), vec![Input::Pick(b())]);
        assert_eq!(picked.preferred_agent(), None);
        let (queued, _) = transition(
            &picked,
            Input::Transfer {
                agent: b(),
                to: TransferTarget::Queue(QueueId::from("q2")),
                note: None,
            },
            secs(3),
            &affinity,
        )
        .unwrap();
        assert_eq!(
            queued.preferred_agent(),
            None,
            "a session since ended the preference"
        );
        let (plain, _) = transition(
            &waiting,
            Input::CustomerMessage(text("m1")),
            secs(1),
            &config(),
        )
        .unwrap();
        assert_eq!(plain.preferred_agent(), None, "no affinity configured");
        // On standby: queued, paused, and no offer asked for; asked for with the preference
        // when the thread comes back.
        let (paused, out) = transition(
            &waiting,
            Input::CustomerMessage(text("m1").on_standby(true)),
            secs(1),
            &affinity,
        )
        .unwrap();
        assert!(paused.is_paused());
        assert_eq!(paused.state(), &State::Open { offer: None });
        assert!(requests(&out).is_empty());
        assert_eq!(
            paused.preferred_agent(),
            None,
            "paused: no offer is asked for"
        );
        let (back, out) = transition(&paused, Input::ThreadReturned, secs(2), &affinity).unwrap();
        assert_eq!(requests(&out), [(vec![], Some(a()))]);
        assert_eq!(back.preferred_agent(), Some(&a()));
    }

    fn c() -> AgentId {
        AgentId::from("cy")
    }

    fn transfer(from: &AgentId, to: TransferTarget, note: Option<&str>) -> Input {
        Input::Transfer {
            agent: from.clone(),
            to,
            note: note.map(str::to_owned),
        }
    }

    fn sends(out: &Transition) -> usize {
        out.effects
            .iter()
            .filter(|e| matches!(e, Effect::Send { .. }))
            .count()
    }

    fn internal_lines(out: &Transition) -> Vec<(Author, Internal)> {
        out.lines
            .iter()
            .filter_map(|l| match &l.body {
                LineBody::Internal(i) => Some((l.author.clone(), i.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_transfer_to_an_agent_offers_it_and_releases_the_session() {
        let (offered, out) = transition(
            &active(&a()),
            transfer(&a(), TransferTarget::Agent(b()), Some("vip")),
            secs(5),
            &config(),
        )
        .unwrap();
        let offer = Offer {
            agent: b(),
            offered_at: secs(5),
            expires_at: secs(5) + config().offer_timeout,
        };
        assert_eq!(
            out.effects,
            [
                Effect::SessionReleased { agent: a() },
                Effect::NotifyOffer(offer.clone())
            ]
        );
        assert_eq!(sends(&out), 0, "nothing reaches the customer");
        assert_eq!(
            internal_lines(&out),
            [(
                Author::Agent(a()),
                Internal::Transferred {
                    to: TransferTarget::Agent(b()),
                    note: Some("vip".into())
                }
            )]
        );
        assert_eq!(offered.state(), &State::Open { offer: Some(offer) });
        assert_eq!(offered.queued_since(), secs(5));
        assert_eq!(offered.last_activity_at(), secs(5));
        let t = offered.transfer().unwrap();
        assert_eq!((&t.from, t.at), (&a(), secs(5)));
        // Accepted: b holds the session, the transfer is over.
        let (taken, out) = transition(&offered, Input::Accept(b()), secs(6), &config()).unwrap();
        assert_eq!(taken.state(), &State::Active { agent: b() });
        assert_eq!(taken.transfer(), None);
        assert_eq!(notices(&out), ["bob accepted the transfer"]);
        // Declined: back in the queue, which offers it to another.
        let (back, out) = transition(&offered, Input::Reject(b()), secs(6), &config()).unwrap();
        assert_eq!(back.state(), &State::Open { offer: None });
        assert_eq!(back.transfer(), None);
        assert_eq!(requests(&out), [(vec![b()], None)]);
        assert_eq!(
            notices(&out),
            [
                "bob declined the conversation",
                "the transfer was not taken; the conversation is back in its queue"
            ]
        );
        // Lapsed: the same, with the offer withdrawn.
        let lapse = secs(5) + config().offer_timeout;
        let (back, out) = transition(&offered, Input::Tick, lapse, &config()).unwrap();
        assert_eq!(back.transfer(), None);
        assert!(out.effects.contains(&Effect::WithdrawOffer { agent: b() }));
        assert_eq!(requests(&out), [(vec![b()], None)]);
        // A plain offer declined keeps no transfer and says nothing of one.
        let plain = after(open(), t0(), vec![Input::OfferTo(b())]);
        let (_, out) = transition(&plain, Input::Reject(b()), secs(1), &config()).unwrap();
        assert_eq!(notices(&out), ["bob declined the conversation"]);
        // A transfer to an agent declined by another agent than the target is kept.
        let mut other = offered.clone();
        other.transfer.as_mut().unwrap().to = TransferTarget::Agent(c());
        let (kept, _) = transition(&other, Input::Reject(b()), secs(6), &config()).unwrap();
        assert!(kept.transfer().is_some());
    }

    #[test]
    fn a_transfer_to_a_queue_requeues_it_without_the_transferring_agent() {
        let (queued, out) = transition(
            &active(&a()),
            transfer(&a(), TransferTarget::Queue(QueueId::from("billing")), None),
            secs(5),
            &config(),
        )
        .unwrap();
        assert_eq!(queued.queue(), Some(&QueueId::from("billing")));
        assert_eq!(queued.state(), &State::Open { offer: None });
        assert_eq!(out.effects[0], Effect::SessionReleased { agent: a() });
        assert_eq!(requests(&out), [(vec![a()], None)]);
        assert_eq!(sends(&out), 0);
        assert_eq!(
            queued
                .excluded_agents(secs(5), &config())
                .collect::<Vec<_>>(),
            [&a()]
        );
        // Offered, accepted: the transfer is over.
        let taken = after(
            queued.clone(),
            secs(6),
            vec![Input::OfferTo(b()), Input::Accept(b())],
        );
        assert_eq!(taken.transfer(), None);
        // Picked: over too.
        let (picked, _) = transition(&queued, Input::Pick(c()), secs(6), &config()).unwrap();
        assert_eq!(picked.transfer(), None);
        // While the thread is held by another app, no offer is asked for.
        let mut paused = active(&a());
        paused.paused = true;
        let (_, out) = transition(
            &paused,
            transfer(&a(), TransferTarget::Queue(QueueId::from("billing")), None),
            secs(5),
            &config(),
        )
        .unwrap();
        assert!(requests(&out).is_empty());
    }

    #[test]
    fn only_the_holder_transfers_an_active_conversation_to_someone_else() {
        let to_b = || transfer(&a(), TransferTarget::Agent(b()), None);
        assert_eq!(
            transition(&open(), to_b(), secs(1), &config()).unwrap_err(),
            TransitionError::Illegal {
                state: StateKind::Open,
                input: InputKind::Transfer
            }
        );
        assert_eq!(
            transition(&active(&b()), to_b(), secs(1), &config()).unwrap_err(),
            TransitionError::NotHolder {
                agent: a(),
                holder: Some(b())
            }
        );
        assert_eq!(
            transition(
                &active(&a()),
                transfer(&a(), TransferTarget::Agent(a()), None),
                secs(1),
                &config()
            )
            .unwrap_err(),
            TransitionError::AlreadyTakesPart { agent: a() }
        );
        let wrap_up = after(active(&a()), t0(), vec![Input::End(a())]);
        assert!(transition(&wrap_up, to_b(), secs(1), &config()).is_err());
    }

    #[test]
    fn a_consult_is_internal_and_ends_with_the_session() {
        let consult = Input::Consult {
            agent: a(),
            consultant: b(),
        };
        let (consulted, out) =
            transition(&active(&a()), consult.clone(), secs(1), &config()).unwrap();
        assert_eq!(consulted.consultants(), [b()]);
        assert_eq!(out.effects, [Effect::ConsultInvited { agent: b() }]);
        assert_eq!(
            internal_lines(&out),
            [(
                Author::Agent(a()),
                Internal::ConsultInvited { consultant: b() }
            )]
        );
        // Twice, or oneself: refused. Not the holder, or not Active: refused.
        assert_eq!(
            transition(&consulted, consult.clone(), secs(2), &config()).unwrap_err(),
            TransitionError::AlreadyTakesPart { agent: b() }
        );
        let me = Input::Consult {
            agent: a(),
            consultant: a(),
        };
        assert!(transition(&consulted, me, secs(2), &config()).is_err());
        assert!(transition(&active(&c()), consult.clone(), secs(2), &config()).is_err());
        assert!(transition(&open(), consult, secs(2), &config()).is_err());
        // Notes: the holder and the consultant; not a third agent; a supervisor always.
        let note = |author: NoteAuthor| Input::Note {
            author,
            text: "check the order".into(),
        };
        for who in [
            NoteAuthor::Agent(a()),
            NoteAuthor::Agent(b()),
            NoteAuthor::Supervisor(c()),
        ] {
            let (_, out) = transition(&consulted, note(who.clone()), secs(2), &config()).unwrap();
            assert_eq!(
                internal_lines(&out),
                [(who.into(), Internal::Note("check the order".into()))]
            );
            assert!(out.effects.is_empty());
        }
        assert_eq!(
            transition(&consulted, note(NoteAuthor::Agent(c())), secs(2), &config()).unwrap_err(),
            TransitionError::NotHolder {
                agent: c(),
                holder: Some(a())
            }
        );
        assert_eq!(
            transition(&open(), note(NoteAuthor::Agent(a())), secs(2), &config()).unwrap_err(),
            TransitionError::NotHolder {
                agent: a(),
                holder: None
            }
        );
        // The holder may still write while it waits, or in wrap-up.
        let waiting = after(active(&a()), t0(), vec![Input::CloseSession(a())]);
        assert!(transition(&waiting, note(NoteAuthor::Agent(a())), secs(2), &config()).is_ok());
        // Leaving.
        let (left, out) =
            transition(&consulted, Input::LeaveConsult(b()), secs(3), &config()).unwrap();
        assert!(left.consultants().is_empty());
        assert_eq!(
            internal_lines(&out),
            [(Author::Agent(b()), Internal::ConsultLeft)]
        );
        assert_eq!(
            transition(&left, Input::LeaveConsult(b()), secs(3), &config()).unwrap_err(),
            TransitionError::NotConsulted { agent: b() }
        );
        // The session ends (End, close, transfer, auto-close): so does the consult.
        for input in [
            Input::End(a()),
            Input::CloseSession(a()),
            transfer(&a(), TransferTarget::Agent(b()), None),
        ] {
            let (next, out) = transition(&consulted, input, secs(4), &config()).unwrap();
            assert!(next.consultants().is_empty());
            assert!(notices(&out).contains(&"the consult ended with the session"));
        }
        let far = secs(4) + config().auto_close_open_active;
        let (closed, _) = transition(&consulted, Input::Tick, far, &config()).unwrap();
        assert!(closed.consultants().is_empty());
        // Nothing of it was sent.
        let (_, out) =
            transition(&consulted, Input::LeaveConsult(b()), secs(3), &config()).unwrap();
        assert_eq!(sends(&out), 0);
    }

    #[test]
    fn a_supervisor_assigns_an_open_conversation() {
        let assign = |agent: AgentId| Input::Assign {
            supervisor: c(),
            agent,
        };
        let (assigned, out) = transition(&open(), assign(a()), secs(1), &config()).unwrap();
        assert_eq!(assigned.state(), &State::Active { agent: a() });
        assert_eq!(assigned.previous_agent(), Some(&a()));
        assert_eq!(out.effects, [Effect::SessionStarted { agent: a() }]);
        assert_eq!(
            internal_lines(&out),
            [(Author::Supervisor(c()), Internal::Assigned { agent: a() })]
        );
        // With an offer to another agent: withdrawn; to the same agent: it becomes the session.
        let offered = after(open(), t0(), vec![Input::OfferTo(b())]);
        let (_, out) = transition(&offered, assign(a()), secs(1), &config()).unwrap();
        assert_eq!(
            out.effects,
            [
                Effect::SessionStarted { agent: a() },
                Effect::WithdrawOffer { agent: b() },
                Effect::offer_ended(b(), t0() + config().offer_timeout)
            ]
        );
        let (_, out) = transition(&offered, assign(b()), secs(1), &config()).unwrap();
        assert_eq!(
            out.effects,
            [
                Effect::SessionStarted { agent: b() },
                Effect::offer_ended(b(), t0() + config().offer_timeout)
            ]
        );
        assert_eq!(
            transition(&active(&a()), assign(b()), secs(1), &config()).unwrap_err(),
            TransitionError::Illegal {
                state: StateKind::Active,
                input: InputKind::Assign
            }
        );
    }

    #[test]
    fn a_forced_close_undoes_what_the_state_held() {
        let close = || Input::ForceClose { supervisor: c() };
        let (closed, out) = transition(&active(&a()), close(), secs(1), &config()).unwrap();
        assert_eq!(
            closed.state(),
            &State::Closed {
                reason: CloseReason::Supervisor
            }
        );
        assert_eq!(out.effects, [Effect::SessionReleased { agent: a() }]);
        assert_eq!(
            internal_lines(&out),
            [(Author::Supervisor(c()), Internal::ForceClosed)]
        );
        let offered = after(open(), t0(), vec![Input::OfferTo(b())]);
        let (_, out) = transition(&offered, close(), secs(1), &config()).unwrap();
        assert_eq!(
            out.effects,
            [
                Effect::WithdrawOffer { agent: b() },
                Effect::offer_ended(b(), t0() + config().offer_timeout)
            ]
        );
        let waiting = after(active(&a()), t0(), vec![Input::CloseSession(a())]);
        let (_, out) = transition(&waiting, close(), secs(1), &config()).unwrap();
        assert!(out.effects.is_empty());
        assert!(transition(&closed, close(), secs(2), &config()).is_err());
    }

    #[test]
    fn outside_hours_only_an_open_conversation_closes() {
        let (closed, out) =
            transition(&open(), Input::CloseOutsideHours, secs(1), &config()).unwrap();
        assert_eq!(
            closed.state(),
            &State::Closed {
                reason: CloseReason::OutsideHours
            }
        );
        assert_eq!(
            notices(&out),
            ["closed: it started outside the queue's operating hours"]
        );
        assert_eq!(
            transition(&active(&a()), Input::CloseOutsideHours, secs(1), &config()).unwrap_err(),
            TransitionError::Illegal {
                state: StateKind::Active,
                input: InputKind::CloseOutsideHours
            }
        );
    }

    #[test]
    fn an_automated_message_is_sent_without_an_agent_and_recorded() {
        let input = |trigger| Input::Automated {
            trigger,
            text: "all busy".into(),
        };
        let (told, out) = transition(
            &open(),
            input(AutomatedTrigger::NoAgentAvailable),
            secs(1),
            &config(),
        )
        .unwrap();
        assert!(told.told_no_agent());
        assert!(!open().told_no_agent());
        assert_eq!(
            out.effects,
            [Effect::Send {
                agent: None,
                message: Outgoing::Automated {
                    trigger: AutomatedTrigger::NoAgentAvailable,
                    text: "all busy".into()
                }
            }]
        );
        assert_eq!(notices(&out), ["all busy"]);
        let (other, _) = transition(
            &open(),
            input(AutomatedTrigger::Greeting),
            secs(1),
            &config(),
        )
        .unwrap();
        assert!(!other.told_no_agent());
        // Added to a transition, it goes before a request for an offer.
        let (_, mut started) = started(text("m0"), &config());
        started.add_automated(t0(), AutomatedTrigger::Greeting, "hello".into());
        assert!(matches!(
            started.effects[0],
            Effect::Send { agent: None, .. }
        ));
        assert!(matches!(started.effects[1], Effect::RequestOffer { .. }));
        let mut empty = Transition::default();
        empty.add_automated(t0(), AutomatedTrigger::Survey, "bye".into());
        assert_eq!(empty.effects.len(), 1);
        assert_eq!(
            Outgoing::Automated {
                trigger: AutomatedTrigger::Survey,
                text: "bye".into()
            }
            .line_body(),
            LineBody::Notice("bye".into())
        );
    }

    #[test]
    fn new_fields_are_not_saved_until_used() {
        let saved = serde_json::to_value(active(&a())).unwrap();
        for key in ["transfer", "consultants", "queued_at", "told_no_agent"] {
            assert!(saved.get(key).is_none(), "{key}");
        }
        let back: Conversation = serde_json::from_value(saved).unwrap();
        assert_eq!(back, active(&a()));
        assert_eq!(back.queued_since(), back.created_at());
        let consulted = after(
            active(&a()),
            t0(),
            vec![Input::Consult {
                agent: a(),
                consultant: b(),
            }],
        );
        let json = serde_json::to_value(&consulted).unwrap();
        assert_eq!(
            serde_json::from_value::<Conversation>(json).unwrap(),
            consulted
        );
    }

    #[test]
    fn a_missed_or_rejected_offer_sets_presence_only_when_configured() {
        use crate::routing::Presence;
        let set = |p: Presence, agent: AgentId, ended_at: SystemTime| Effect::SetPresence {
            agent,
            presence: p,
            ended_at,
        };
        let lapse = secs(0) + config().offer_timeout;
        let cfg = config()
            .presence_after_rejected_offer(Some(Presence::DoNotDisturb))
            .presence_after_missed_offer(Some(Presence::Away));
        for (config, rejected, missed) in [
            (
                cfg.clone(),
                Some(set(Presence::DoNotDisturb, a(), secs(1))),
                Some(set(Presence::Away, a(), lapse)),
            ),
            (config(), None, None),
        ] {
            let mut offered = open();
            offered.apply(Input::OfferTo(a()), t0(), &config).unwrap();
            let mut c = offered.clone();
            let out = c.apply(Input::Reject(a()), secs(1), &config).unwrap();
            let found = out
                .effects
                .iter()
                .find(|e| matches!(e, Effect::SetPresence { .. }));
            assert_eq!(found, rejected.as_ref());
            let mut c = offered.clone();
            let out = c.apply(Input::Tick, lapse, &config).unwrap();
            let found = out
                .effects
                .iter()
                .find(|e| matches!(e, Effect::SetPresence { .. }));
            assert_eq!(found, missed.as_ref());
            // Before the countdown ends: nothing.
            let mut c = offered.clone();
            let out = c.apply(Input::Tick, secs(1), &config).unwrap();
            assert!(
                !out.effects
                    .iter()
                    .any(|e| matches!(e, Effect::SetPresence { .. }))
            );
        }
    }

    #[test]
    fn the_customers_locale_is_kept_and_a_bad_one_never_makes_it_unreadable() {
        use crate::locale::Locale;
        let saved = serde_json::to_value(active(&a())).unwrap();
        assert!(saved.get("customer_locale").is_none(), "not saved unset");
        let fr = active(&a()).with_customer_locale(Some(Locale::new("fr-ca").unwrap()));
        let json = serde_json::to_value(&fr).unwrap();
        assert_eq!(json["customer_locale"], "fr_CA");
        let back: Conversation = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, fr);
        assert_eq!(back.customer_locale().map(Locale::as_str), Some("fr_CA"));
        // Written by something else: dropped, the conversation read all the same.
        for bad in [serde_json::json!("fr CA"), serde_json::json!(null)] {
            let mut json = json.clone();
            json["customer_locale"] = bad;
            let back: Conversation = serde_json::from_value(json).unwrap();
            assert_eq!(back.customer_locale(), None);
            assert_eq!(back.id(), fr.id());
        }
        // A step keeps it.
        let ended = after(fr.clone(), t0(), vec![Input::End(a())]);
        assert_eq!(ended.customer_locale(), fr.customer_locale());
    }

    #[test]
    fn a_customer_record_is_linked_by_the_host_or_a_participant() {
        use crate::ids::CustomerRecordId;
        let link = |by: Option<AgentId>, record: Option<&str>| Input::LinkRecord {
            by,
            record: record.map(CustomerRecordId::from),
        };
        // The host links a conversation still waiting for an agent.
        let (open, _) = started(
            Inbound::new(Some("m_1".into()), vec![LineBody::Text("hi".into())]),
            &config(),
        );
        let (linked, out) =
            transition(&open, link(None, Some("contact-42")), secs(1), &config()).unwrap();
        assert_eq!(
            linked.customer_record(),
            Some(&CustomerRecordId::from("contact-42"))
        );
        assert_eq!(
            internal_lines(&out),
            [(
                Author::System,
                Internal::RecordLinked {
                    record: Some("contact-42".into())
                }
            )]
        );
        assert!(out.effects.is_empty(), "nothing reaches the customer");
        // The same record again: nothing changes, nothing is written.
        let (_, again) =
            transition(&linked, link(None, Some("contact-42")), secs(2), &config()).unwrap();
        assert!(again.lines.is_empty());
        // The holder relinks and unlinks; another agent may not.
        let held = active(&a());
        assert_eq!(
            transition(&held, link(Some(b()), Some("x")), secs(1), &config()).unwrap_err(),
            TransitionError::NotHolder {
                agent: b(),
                holder: Some(a())
            }
        );
        let (held, out) = transition(
            &held,
            link(Some(a()), Some("account-7")),
            secs(1),
            &config(),
        )
        .unwrap();
        assert_eq!(
            held.customer_record(),
            Some(&CustomerRecordId::from("account-7"))
        );
        assert_eq!(internal_lines(&out)[0].0, Author::Agent(a()));
        let (held, out) = transition(&held, link(Some(a()), None), secs(2), &config()).unwrap();
        assert_eq!(held.customer_record(), None);
        assert_eq!(
            internal_lines(&out),
            [(Author::Agent(a()), Internal::RecordLinked { record: None })]
        );
        assert_eq!(
            Internal::RecordLinked { record: None }.to_string(),
            "unlinked the customer record"
        );
        // Closed conversations never change.
        let (closed, _) = transition(
            &held,
            Input::ForceClose { supervisor: c() },
            secs(3),
            &config(),
        )
        .unwrap();
        assert_eq!(
            transition(&closed, link(None, Some("late")), secs(4), &config()).unwrap_err(),
            TransitionError::Closed {
                input: InputKind::LinkRecord
            }
        );
    }

    #[test]
    fn internal_lines_read_for_agents() {
        assert!(LineBody::Internal(Internal::ConsultLeft).is_internal());
        assert!(!LineBody::Notice("x".into()).is_internal());
        let cases = [
            (Internal::Note("n".into()), "n"),
            (
                Internal::Transferred {
                    to: TransferTarget::Agent(b()),
                    note: None,
                },
                "transferred to bob",
            ),
            (
                Internal::ConsultInvited { consultant: b() },
                "invited bob to consult",
            ),
            (Internal::ConsultLeft, "left the consult"),
            (
                Internal::Assigned { agent: b() },
                "assigned the conversation to bob",
            ),
            (Internal::ForceClosed, "closed the conversation"),
        ];
        for (line, words) in cases {
            assert_eq!(line.to_string(), words);
        }
        assert_eq!(
            Author::from(NoteAuthor::Supervisor(c())),
            Author::Supervisor(c())
        );
    }
}
