//! Every (state, input) pair of the state machine, legal and illegal, with the clock passed in.
// The full table is one function on purpose: rows and columns side by side.
#![allow(clippy::too_many_lines)]

use std::time::{Duration, SystemTime};

use messenger_channel::conversation::{
    CloseReason, Conversation, ConversationConfig, Effect, Inbound, Input, LineBody, Offer,
    Outgoing, State, StateKind, Transition, TransitionError, transition,
};
use messenger_channel::ids::{AgentId, ConversationId, PageId, UserId};

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_718_000_000)
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

fn message(mid: &str) -> Input {
    Input::CustomerMessage(Inbound::new(
        Some(mid.into()),
        vec![LineBody::Text("hi".into())],
    ))
}

/// A conversation in `state`, reached through the machine (nothing else can change one):
/// started at `t0`, then `before`, then the inputs that lead to `state`, all at `t0`, under
/// `config`.
fn conversation_with(
    state: &State,
    before: Vec<Input>,
    config: &ConversationConfig,
) -> Conversation {
    let (mut c, _) = Conversation::start(
        ConversationId::from("c1"),
        PageId::from("p"),
        UserId::from("u"),
        Inbound::new(Some("m0".into()), vec![LineBody::Text("hello".into())]),
        t0(),
        config,
    );
    let take = |agent: &AgentId| vec![Input::OfferTo(agent.clone()), Input::Accept(agent.clone())];
    let inputs = match state {
        State::Open { offer: None } => vec![],
        State::Open { offer: Some(o) } => vec![Input::OfferTo(o.agent.clone())],
        State::Active { agent } => take(agent),
        State::Waiting { agent } => {
            [take(agent), vec![Input::CloseSession(agent.clone())]].concat()
        }
        State::WrapUp { agent } => [take(agent), vec![Input::End(agent.clone())]].concat(),
        State::Closed {
            reason: CloseReason::Agent,
        } => [take(&a()), vec![Input::End(a()), Input::CloseSession(a())]].concat(),
        other => panic!("no path to {other:?} here"),
    };
    for input in before.into_iter().chain(inputs) {
        c.apply(input, t0(), config).unwrap();
    }
    assert_eq!(c.state(), state, "the inputs lead to the state");
    c
}

fn conversation(state: &State) -> Conversation {
    conversation_with(state, vec![], &config())
}

fn offered(to: AgentId) -> State {
    State::Open {
        offer: Some(Offer {
            agent: to,
            offered_at: t0(),
            expires_at: t0() + Duration::from_secs(120),
        }),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    To(StateKind),
    Illegal,
    Closed,
    NotOffered,
    NotHolder,
    Outstanding,
}

fn outcome(result: &Result<(Conversation, Transition), TransitionError>) -> Expect {
    match result {
        Ok((c, _)) => Expect::To(c.state().kind()),
        Err(TransitionError::Illegal { .. }) => Expect::Illegal,
        Err(TransitionError::Closed { .. }) => Expect::Closed,
        Err(TransitionError::NotOfferedTo { .. }) => Expect::NotOffered,
        Err(TransitionError::NotHolder { .. }) => Expect::NotHolder,
        Err(TransitionError::OfferOutstanding { .. }) => Expect::Outstanding,
        Err(other) => panic!("unexpected {other:?}"),
    }
}

#[test]
fn every_state_input_pair() {
    use Expect::{Closed, Illegal, NotHolder, NotOffered, Outstanding, To};
    use StateKind::{Active, Open, Waiting, WrapUp};
    let states: Vec<(&str, State)> = vec![
        ("open", State::Open { offer: None }),
        ("offered", offered(a())),
        ("active", State::Active { agent: a() }),
        ("waiting", State::Waiting { agent: a() }),
        ("wrap-up", State::WrapUp { agent: a() }),
        (
            "closed",
            State::Closed {
                reason: CloseReason::Agent,
            },
        ),
    ];
    let send = |agent: AgentId| Input::AgentSend {
        agent,
        message: Outgoing::Text("x".into()),
    };
    let inputs: Vec<(&str, Input)> = vec![
        ("message", message("m1")),
        ("offer a", Input::OfferTo(a())),
        ("accept a", Input::Accept(a())),
        ("accept b", Input::Accept(b())),
        ("reject a", Input::Reject(a())),
        ("reject b", Input::Reject(b())),
        ("send a", send(a())),
        ("send b", send(b())),
        ("end a", Input::End(a())),
        ("end b", Input::End(b())),
        ("close a", Input::CloseSession(a())),
        ("close b", Input::CloseSession(b())),
        ("revive a", Input::Revive(a())),
        ("revive b", Input::Revive(b())),
        ("tick", Input::Tick),
        ("taken", Input::ThreadTaken),
        ("returned", Input::ThreadReturned),
    ];
    // Rows: states in the order above; columns: inputs in the order above.
    let table: [[Expect; 17]; 6] = [
        // message offer-a acc-a acc-b rej-a rej-b send-a send-b end-a end-b close-a close-b rev-a rev-b tick taken returned
        [
            To(Open),
            To(Open),
            NotOffered,
            NotOffered,
            NotOffered,
            NotOffered,
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            To(Open),
            To(Open),
            To(Open),
        ],
        [
            To(Open),
            Outstanding,
            To(Active),
            NotOffered,
            To(Open),
            NotOffered,
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            To(Open),
            To(Open),
            To(Open),
        ],
        [
            To(Active),
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            To(Active),
            NotHolder,
            To(WrapUp),
            NotHolder,
            To(Waiting),
            NotHolder,
            Illegal,
            Illegal,
            To(Active),
            To(Active),
            To(Active),
        ],
        [
            To(Open),
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            To(Active),
            NotHolder,
            To(Waiting),
            To(Waiting),
            To(Waiting),
        ],
        [
            To(WrapUp),
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            Illegal,
            To(StateKind::Closed),
            NotHolder,
            Illegal,
            Illegal,
            To(WrapUp),
            To(WrapUp),
            To(WrapUp),
        ],
        [Closed; 17],
    ];
    let now = t0() + Duration::from_secs(10);
    for (row, (state_name, state)) in states.iter().enumerate() {
        for (col, (input_name, input)) in inputs.iter().enumerate() {
            let before = conversation(state);
            let result = transition(&before, input.clone(), now, &config());
            assert_eq!(
                outcome(&result),
                table[row][col],
                "{state_name} + {input_name}: {result:?}"
            );
            if result.is_err() {
                // `apply` leaves the conversation untouched on error.
                let mut same = before.clone();
                assert!(same.apply(input.clone(), now, &config()).is_err());
                assert_eq!(same, before, "{state_name} + {input_name} changed on error");
            }
        }
    }
}

#[test]
fn illegal_errors_name_the_state_and_input() {
    let c = conversation(&State::Waiting { agent: a() });
    let err = transition(&c, Input::End(a()), t0(), &config()).unwrap_err();
    assert_eq!(
        err,
        TransitionError::Illegal {
            state: StateKind::Waiting,
            input: messenger_channel::conversation::InputKind::End
        }
    );
    assert_eq!(err.to_string(), "End is not possible in state Waiting");
}

#[test]
fn offers_expire_and_exclude_who_declined() {
    let cfg = config();
    let c = conversation(&State::Open { offer: None });
    let (c, out) = transition(&c, Input::OfferTo(a()), t0(), &cfg).unwrap();
    assert!(out.effects.iter().any(|e| matches!(e, Effect::NotifyOffer(o) if o.agent == a() && o.expires_at == t0() + Duration::from_secs(120))));
    // The offer's deadline is the conversation's next one.
    assert_eq!(c.next_deadline(&cfg), Some(t0() + Duration::from_secs(120)));
    // Accepting at the deadline is too late; one millisecond before is fine.
    let late = transition(
        &c,
        Input::Accept(a()),
        t0() + Duration::from_secs(120),
        &cfg,
    )
    .unwrap_err();
    assert!(matches!(late, TransitionError::OfferExpired { .. }));
    assert!(
        transition(
            &c,
            Input::Accept(a()),
            t0() + Duration::from_millis(119_999),
            &cfg
        )
        .is_ok()
    );
    // A tick before the deadline changes nothing; at the deadline the offer lapses.
    let (same, out) = transition(&c, Input::Tick, t0() + Duration::from_secs(119), &cfg).unwrap();
    assert_eq!((same, out), (c.clone(), Transition::default()));
    let (lapsed, out) = transition(&c, Input::Tick, t0() + Duration::from_secs(120), &cfg).unwrap();
    assert_eq!(lapsed.state(), &State::Open { offer: None });
    assert!(out.effects.contains(&Effect::WithdrawOffer { agent: a() }));
    assert!(
        out.effects
            .iter()
            .any(|e| matches!(e, Effect::RequestOffer { exclude, .. } if exclude == &vec![a()]))
    );
    // The same agent cannot be offered it again within the re-offer interval...
    let again = transition(
        &lapsed,
        Input::OfferTo(a()),
        t0() + Duration::from_secs(121),
        &cfg,
    )
    .unwrap_err();
    assert!(matches!(again, TransitionError::RecentlyDeclined { .. }));
    // ...but another can, and after the interval the first can too.
    assert!(
        transition(
            &lapsed,
            Input::OfferTo(b()),
            t0() + Duration::from_secs(121),
            &cfg
        )
        .is_ok()
    );
    assert!(
        transition(
            &lapsed,
            Input::OfferTo(a()),
            t0() + Duration::from_secs(120) + cfg.reoffer_interval,
            &cfg
        )
        .is_ok()
    );
}

#[test]
fn auto_close_timers() {
    let cfg = config();
    let day = Duration::from_secs(24 * 3600);
    for (state, after, reason) in [
        (
            State::Open { offer: None },
            30 * day,
            CloseReason::AutoClose,
        ),
        (
            State::Active { agent: a() },
            30 * day,
            CloseReason::AutoClose,
        ),
        (State::WrapUp { agent: a() }, day, CloseReason::AutoClose),
        (
            State::Waiting { agent: a() },
            cfg.waiting_inactivity,
            CloseReason::Inactivity,
        ),
    ] {
        let c = conversation(&state);
        let (not_yet, _) = transition(
            &c,
            Input::Tick,
            t0() + after - Duration::from_millis(1),
            &cfg,
        )
        .unwrap();
        assert_eq!(not_yet.state(), &state);
        assert_eq!(not_yet.next_deadline(&cfg), Some(t0() + after), "{state:?}");
        let (closed, out) = transition(&c, Input::Tick, t0() + after, &cfg).unwrap();
        assert_eq!(closed.state(), &State::Closed { reason }, "{state:?}");
        // Closed: no deadline any more, and the transcript says why.
        assert_eq!(closed.next_deadline(&cfg), None, "{state:?}");
        let why = if reason == CloseReason::Inactivity {
            "closed after inactivity"
        } else {
            "closed automatically"
        };
        assert!(
            out.lines
                .iter()
                .any(|l| l.body == LineBody::Notice(why.into())),
            "{state:?}"
        );
        let released = out
            .effects
            .contains(&Effect::SessionReleased { agent: a() });
        assert_eq!(
            released,
            matches!(state, State::Active { .. } | State::WrapUp { .. }),
            "{state:?}"
        );
    }
}

#[test]
fn waiting_goes_back_to_the_same_agent_with_affinity() {
    let with = config().agent_affinity(true);
    let c = conversation(&State::Waiting { agent: a() });
    let (open, out) = transition(&c, message("m9"), t0(), &with).unwrap();
    assert_eq!(open.state(), &State::Open { offer: None });
    assert!(
        out.effects
            .iter()
            .any(|e| matches!(e, Effect::RequestOffer { prefer: Some(p), .. } if *p == a()))
    );
    let (_, out) = transition(&c, message("m9"), t0(), &config()).unwrap();
    assert!(
        out.effects
            .iter()
            .any(|e| matches!(e, Effect::RequestOffer { prefer: None, .. }))
    );
}

#[test]
fn start_sends_and_records_the_privacy_notice() {
    let cfg = config().privacy_notice(Some("may be recorded".into()));
    let (c, out) = Conversation::start(
        ConversationId::from("c"),
        PageId::from("p"),
        UserId::from("u"),
        Inbound::new(Some("m".into()), vec![LineBody::Text("hi".into())]),
        t0(),
        &cfg,
    );
    assert_eq!(c.state(), &State::Open { offer: None });
    assert_eq!(c.last_customer_message_at(), Some(t0()));
    assert!(out.effects.contains(&Effect::Send {
        agent: None,
        message: Outgoing::PrivacyNotice("may be recorded".into())
    }));
    assert!(
        out.lines
            .iter()
            .any(|l| l.body == LineBody::Notice("may be recorded".into()))
    );
    assert!(
        out.effects
            .iter()
            .any(|e| matches!(e, Effect::RequestOffer { .. }))
    );
}

#[test]
fn a_paused_thread_refuses_agent_sends_until_returned() {
    let c = conversation(&State::Active { agent: a() });
    let (paused, _) = transition(&c, Input::ThreadTaken, t0(), &config()).unwrap();
    assert!(paused.is_paused());
    let send = Input::AgentSend {
        agent: a(),
        message: Outgoing::Text("x".into()),
    };
    assert_eq!(
        transition(&paused, send.clone(), t0(), &config()).unwrap_err(),
        TransitionError::ThreadPaused
    );
    // Inbound messages are still recorded while paused.
    assert!(transition(&paused, message("m2"), t0(), &config()).is_ok());
    let (resumed, _) = transition(&paused, Input::ThreadReturned, t0(), &config()).unwrap();
    assert!(transition(&resumed, send, t0(), &config()).is_ok());
}

/// Durations from configuration are not trusted: `Duration::MAX` in every field of the config
/// must give far-future deadlines, never a `SystemTime + Duration` overflow panic.
#[test]
fn huge_configured_durations_saturate_instead_of_panicking() {
    let cfg = ConversationConfig::default()
        .offer_timeout(Duration::MAX)
        .reoffer_interval(Duration::MAX)
        .auto_close_open_active(Duration::MAX)
        .auto_close_wrap_up(Duration::MAX)
        .waiting_inactivity(Duration::MAX);
    let thousand_years = Duration::from_secs(1000 * 365 * 24 * 3600);
    let far = t0() + thousand_years;
    let (c, _) = Conversation::start(
        ConversationId::from("c1"),
        PageId::from("p"),
        UserId::from("u"),
        Inbound::new(Some("m0".into()), vec![LineBody::Text("hello".into())]),
        t0(),
        &cfg,
    );
    // The auto-close deadline saturates.
    assert!(c.next_deadline(&cfg).is_some_and(|d| d > far));

    // Offer, let it be rejected, and offer to the same agent again: the re-offer interval and
    // the offer deadline both saturate.
    let (offered, out) = transition(&c, Input::OfferTo(a()), t0(), &cfg).unwrap();
    assert!(
        out.effects
            .iter()
            .any(|e| matches!(e, Effect::NotifyOffer(o) if o.expires_at > far))
    );
    let (rejected, _) = transition(&offered, Input::Reject(a()), t0(), &cfg).unwrap();
    match transition(&rejected, Input::OfferTo(a()), t0() + thousand_years, &cfg) {
        Err(TransitionError::RecentlyDeclined { until, .. }) => assert!(until > far),
        other => panic!("expected RecentlyDeclined, got {other:?}"),
    }
    // A tick long after changes nothing: no deadline has come.
    let (same, out) = transition(&offered, Input::Tick, far, &cfg).unwrap();
    assert_eq!((same, out), (offered.clone(), Transition::default()));

    // Every state and input under the huge config, with an agent (b) who declined: results,
    // never a panic.
    let send = |agent: AgentId| Input::AgentSend {
        agent,
        message: Outgoing::Text("x".into()),
    };
    for state in [
        State::Open { offer: None },
        offered.state().clone(),
        rejected.state().clone(),
        State::Active { agent: a() },
        State::Waiting { agent: a() },
        State::WrapUp { agent: a() },
    ] {
        let c = conversation_with(&state, vec![Input::OfferTo(b()), Input::Reject(b())], &cfg);
        assert_eq!(c.excluded_agents(far, &cfg).collect::<Vec<_>>(), [&b()]);
        assert!(c.next_deadline(&cfg).is_some_and(|d| d > far));
        for input in [
            message("m1"),
            Input::OfferTo(a()),
            Input::OfferTo(b()),
            Input::Accept(a()),
            Input::Reject(a()),
            send(a()),
            Input::End(a()),
            Input::CloseSession(a()),
            Input::Revive(a()),
            Input::Tick,
            Input::ThreadTaken,
            Input::ThreadReturned,
        ] {
            if let Ok((next, _)) = transition(&c, input, far, &cfg) {
                let _ = next.next_deadline(&cfg);
            }
        }
    }
}
