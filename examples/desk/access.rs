//! Who may read a conversation (and its files): supervisors read every one; an agent reads
//! the conversations they work on (holds, held last, is offered, consults in, transferred or
//! was sent by transfer, wrote in), those still waiting for an agent (the queue view and
//! Pick), and the closed conversations of a customer they worked with (the customer's
//! history); never another agent's conversation under way.

use messenger_channel::conversation::{Author, Conversation, State, TranscriptLine};
use messenger_channel::ids::AgentId;
use messenger_channel::store::{ConversationStore, StoreError};

use crate::auth::{Role, SignedIn};
use crate::{Shared, agent::HISTORY_MAX};

/// Whether the signed-in account may read `conversation`, whose transcript is `lines`.
pub(crate) async fn may_read(
    desk: &Shared,
    who: &SignedIn,
    conversation: &Conversation,
    lines: &[TranscriptLine],
) -> Result<bool, StoreError> {
    if who.account.role == Role::Supervisor
        || matches!(conversation.state(), State::Open { offer: None })
        || involves(conversation, lines, &who.agent)
    {
        return Ok(true);
    }
    // A closed conversation of a customer the agent worked with (another conversation of the
    // customer's involved them) is part of that customer's history.
    if !matches!(conversation.state(), State::Closed { .. }) {
        return Ok(false);
    }
    for other in desk
        .store
        .history(
            conversation.page(),
            conversation.customer(),
            HISTORY_MAX + 1,
        )
        .await?
    {
        let other = other.conversation;
        if other.id() == conversation.id() {
            continue;
        }
        if involves(&other, &[], &who.agent)
            || involves(
                &other,
                &desk.store.transcript(other.id()).await?,
                &who.agent,
            )
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether the conversation involves the agent: by its state, the agent who held it last, its
/// consultants, its transfer, or a line the agent wrote.
fn involves(conversation: &Conversation, lines: &[TranscriptLine], agent: &AgentId) -> bool {
    let by_state = match conversation.state() {
        State::Open { offer } => offer.as_ref().is_some_and(|o| &o.agent == agent),
        State::Active { agent: a } | State::Waiting { agent: a } | State::WrapUp { agent: a } => {
            a == agent
        }
        _ => false,
    };
    let by_transfer = conversation.transfer().is_some_and(|t| {
        &t.from == agent
            || matches!(&t.to, messenger_channel::conversation::TransferTarget::Agent(to) if to == agent)
    });
    by_state
        || by_transfer
        || conversation.previous_agent() == Some(agent)
        || conversation.consultants().contains(agent)
        || lines
            .iter()
            .any(|l| matches!(&l.author, Author::Agent(a) if a == agent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use messenger_channel::conversation::{ConversationConfig, Inbound, Input, LineBody, Outgoing};
    use messenger_channel::ids::{ConversationId, PageId, UserId};
    use std::time::SystemTime;

    fn start() -> Conversation {
        let config = ConversationConfig::default();
        Conversation::start(
            ConversationId::from("c1"),
            PageId::from("p"),
            UserId::from("u"),
            Inbound::new(Some("m_1".into()), vec![LineBody::Text("hi".into())]),
            SystemTime::UNIX_EPOCH,
            &config,
        )
        .0
    }

    #[test]
    fn an_agent_is_involved_only_in_their_own_work() {
        let (ada, bob) = (AgentId::from("ada"), AgentId::from("bob"));
        let config = ConversationConfig::default();
        let now = SystemTime::UNIX_EPOCH;
        let mut c = start();
        assert!(
            !involves(&c, &[], &ada),
            "a new conversation involves nobody"
        );
        c.apply(Input::OfferTo(ada.clone()), now, &config).unwrap();
        assert!(involves(&c, &[], &ada), "offered to ada");
        assert!(!involves(&c, &[], &bob));
        c.apply(Input::Accept(ada.clone()), now, &config).unwrap();
        assert!(involves(&c, &[], &ada), "held by ada");
        assert!(!involves(&c, &[], &bob));
        let sent = c
            .apply(
                Input::AgentSend {
                    agent: ada.clone(),
                    message: Outgoing::Text("on its way".into()),
                },
                now,
                &config,
            )
            .unwrap();
        let fresh = start();
        assert!(involves(&fresh, &sent.lines, &ada), "ada wrote in it");
        assert!(!involves(&fresh, &sent.lines, &bob));
    }
}
