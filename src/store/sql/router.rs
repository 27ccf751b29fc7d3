//! The router's Rust, written once for both backends (as `backend.rs` is): agents' presence,
//! skills and capacity, and the reservations of their capacity, in the shared database
//! ([`AgentRouter`]), so that instances sharing it never take an agent past capacity.
//!
//! `routing_work` holds one row per conversation and agent: an offer's or a pick's
//! reservation until `until_ms`, or a session. A reservation is one write transaction that
//! first locks the agent's row (PostgreSQL: `FOR UPDATE`; SQLite: `BEGIN IMMEDIATE`
//! serialises every writer), so that concurrent reservations of one agent see each other's
//! units; a unique index allows one pick per conversation, so that concurrent picks of one
//! conversation end with one winner.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::Store;
use super::dialect::{BEGIN_WRITE, ROW_LOCK};
use crate::agents::{AgentRouter, Hold, OfferRequest, PickOutcome};
use crate::ids::{AgentId, ConversationId, SkillId};
use crate::routing::{AgentProfile, AgentStatus, DEFAULT_AGENT_CAPACITY, Presence, choose_agent};
use crate::store::StoreError;
use crate::store::sql::queries as q;
use crate::store::sql::{from_json, from_sqlx, to_json};
use crate::time::{from_millis, millis};

/// How many times `reserve_offer` decides again after the agent it chose was taken by a
/// concurrent reservation.
const RESERVE_ATTEMPTS: usize = 8;

/// An agent as read: id, presence, capacity, skills, last assigned, units in use, units of
/// sessions.
type AgentRow = (String, String, i64, String, Option<i64>, i64, i64);

fn status(row: AgentRow) -> Result<AgentStatus, StoreError> {
    let (agent, presence, capacity, skills, last_assigned, used, sessions) = row;
    let mut profile =
        AgentProfile::new(AgentId::new(agent)).capacity(u32::try_from(capacity).unwrap_or(0));
    profile.skills = from_json::<BTreeMap<SkillId, u8>>(&skills)?;
    Ok(AgentStatus::new(
        profile,
        Presence::parse(&presence).unwrap_or(Presence::Offline),
    )
    .used(u32::try_from(used).unwrap_or(u32::MAX))
    .sessions(u32::try_from(sessions).unwrap_or(u32::MAX))
    .last_assigned(last_assigned.map(from_millis)))
}

/// Reads (and on PostgreSQL locks) an agent's row: presence and capacity. Reservations and
/// sessions of one agent take it first, and wait for each other there.
fn agent_lock() -> String {
    format!("SELECT presence, capacity FROM routing_agents WHERE agent = $1{ROW_LOCK}")
}

/// What became of one reservation.
enum Reserved {
    Yes,
    /// The conversation is held by someone (a session, a pick; for a pick, an offer too).
    Taken,
    /// The agent has not the capacity (or, for an offer, is no longer available).
    No,
}

/// `routing_work.kind`: an offer's reservation.
const OFFER: i64 = 0;
/// `routing_work.kind`: a pick's reservation.
const PICK: i64 = 2;

impl Store {
    /// Agents as `sql` selects them (`$1`: now; `$2`: `bind`).
    async fn statuses(
        &self,
        now: SystemTime,
        sql: &str,
        bind: Option<&str>,
    ) -> Result<Vec<AgentStatus>, StoreError> {
        let mut query = sqlx::query_as::<_, AgentRow>(sql).bind(millis(now));
        if let Some(b) = bind {
            query = query.bind(b.to_owned());
        }
        let mut all = query
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlx)?
            .into_iter()
            .map(status)
            .collect::<Result<Vec<_>, _>>()?;
        // In the ids' own order, whatever the database's collation.
        all.sort_by(|x, y| x.id().cmp(y.id()));
        Ok(all)
    }

    /// Whether someone holds the conversation's session or a pick of it at `now`.
    async fn held(
        &self,
        conversation: &ConversationId,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as(q::CONVERSATION_HELD)
            .bind(conversation.as_str())
            .bind(millis(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(row.is_some())
    }

    /// Reserves `units` of `agent` for `conversation` (an offer, only while the agent is
    /// available, or a pick), in one transaction.
    async fn reserve(
        &self,
        conversation: &ConversationId,
        agent: &AgentId,
        units: u32,
        hold: Hold,
        kind: i64,
    ) -> Result<Reserved, StoreError> {
        let now = millis(hold.at);
        let mut tx = self
            .writer
            .begin_with(BEGIN_WRITE)
            .await
            .map_err(from_sqlx)?;
        if kind == PICK {
            sqlx::query(q::ENSURE_AGENT)
                .bind(agent.as_str())
                .bind(i64::from(DEFAULT_AGENT_CAPACITY))
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        }
        // The agent's row first: reservations of one agent wait for each other here.
        let row: Option<(String, i64)> = sqlx::query_as(&agent_lock())
            .bind(agent.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        let Some((presence, capacity)) = row else {
            return Ok(Reserved::No);
        };
        if kind == OFFER && !Presence::parse(&presence).is_some_and(Presence::takes_offers) {
            return Ok(Reserved::No);
        }
        sqlx::query(q::DROP_LAPSED_WORK)
            .bind(conversation.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        // An offer waits for no session or pick; a pick, for nothing at all.
        let holders = if kind == OFFER {
            q::CONVERSATION_HELD
        } else {
            q::CONVERSATION_RESERVED
        };
        let taken: Option<(i64,)> = sqlx::query_as(holders)
            .bind(conversation.as_str())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        if taken.is_some() {
            return Ok(Reserved::Taken);
        }
        let own: Option<(i64, Option<i64>)> = sqlx::query_as(q::WORK_OF)
            .bind(conversation.as_str())
            .bind(agent.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        if own.is_some() {
            // The agent's own offer of it (one whose instance never made it, or is making it
            // again): renewed, counted once.
            sqlx::query(q::RENEW_OFFER)
                .bind(conversation.as_str())
                .bind(agent.as_str())
                .bind(millis(hold.until))
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        } else {
            let (used,): (i64,) = sqlx::query_as(q::AGENT_UNITS_IN_USE)
                .bind(agent.as_str())
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(from_sqlx)?;
            if used.saturating_add(i64::from(units)) > capacity {
                return Ok(Reserved::No);
            }
            let inserted = sqlx::query(q::RESERVE_WORK)
                .bind(conversation.as_str())
                .bind(agent.as_str())
                .bind(i64::from(units))
                .bind(kind)
                .bind(millis(hold.until))
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx);
            match inserted {
                Ok(_) => {}
                // Another pick of the conversation committed first.
                Err(StoreError::Conflict) => return Ok(Reserved::Taken),
                Err(e) => return Err(e),
            }
        }
        sqlx::query(q::AGENT_ASSIGNED)
            .bind(agent.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        match tx.commit().await.map_err(from_sqlx) {
            Ok(()) => Ok(Reserved::Yes),
            Err(StoreError::Conflict) => Ok(Reserved::Taken),
            Err(e) => Err(e),
        }
    }

    async fn end_work(
        &self,
        sql: &str,
        conversation: &ConversationId,
        agent: &AgentId,
    ) -> Result<(), StoreError> {
        sqlx::query(sql)
            .bind(conversation.as_str())
            .bind(agent.as_str())
            .execute(&self.writer)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl AgentRouter for Store {
    async fn upsert_agent(&self, profile: &AgentProfile) -> Result<(), StoreError> {
        sqlx::query(q::UPSERT_AGENT)
            .bind(profile.id.as_str())
            .bind(i64::from(profile.capacity))
            .bind(to_json(&profile.skills)?)
            .execute(&self.writer)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    async fn update_presence(&self, agent: &AgentId, presence: Presence) -> Result<(), StoreError> {
        sqlx::query(q::UPSERT_PRESENCE)
            .bind(agent.as_str())
            .bind(presence.as_str())
            .bind(i64::from(DEFAULT_AGENT_CAPACITY))
            .execute(&self.writer)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    async fn presence_after_offer(
        &self,
        agent: &AgentId,
        presence: Presence,
        ended_at: SystemTime,
    ) -> Result<bool, StoreError> {
        let set = sqlx::query(q::PRESENCE_AFTER_OFFER)
            .bind(agent.as_str())
            .bind(presence.as_str())
            .bind(millis(ended_at))
            .execute(&self.writer)
            .await
            .map_err(from_sqlx)?;
        Ok(set.rows_affected() == 1)
    }

    async fn agent_statuses(&self, now: SystemTime) -> Result<Vec<AgentStatus>, StoreError> {
        self.statuses(now, q::AGENT_STATUSES, None).await
    }

    async fn agent_status(
        &self,
        agent: &AgentId,
        now: SystemTime,
    ) -> Result<Option<AgentStatus>, StoreError> {
        Ok(self
            .statuses(now, q::AGENT_STATUS, Some(agent.as_str()))
            .await?
            .into_iter()
            .next())
    }

    async fn reserve_offer(
        &self,
        conversation: &ConversationId,
        request: &OfferRequest<'_>,
        hold: Hold,
    ) -> Result<Option<AgentId>, StoreError> {
        let mut exclude = request.exclude.to_vec();
        for _ in 0..RESERVE_ATTEMPTS {
            if self.held(conversation, hold.at).await? {
                return Ok(None);
            }
            let available = self
                .statuses(
                    hold.at,
                    q::AVAILABLE_AGENTS_EXCEPT,
                    Some(conversation.as_str()),
                )
                .await?;
            let Some(chosen) = choose_agent(request.queue, &available, &exclude, request.prefer)
            else {
                return Ok(None);
            };
            let agent = chosen.id().clone();
            match self
                .reserve(
                    conversation,
                    &agent,
                    request.queue.capacity_units,
                    hold,
                    OFFER,
                )
                .await?
            {
                Reserved::Yes => return Ok(Some(agent)),
                Reserved::Taken => return Ok(None),
                // Taken meanwhile by another reservation: decide again without them.
                Reserved::No => exclude.push(agent),
            }
        }
        Ok(None)
    }

    async fn reserve_pick(
        &self,
        conversation: &ConversationId,
        agent: &AgentId,
        units: u32,
        hold: Hold,
    ) -> Result<PickOutcome, StoreError> {
        Ok(
            match self.reserve(conversation, agent, units, hold, PICK).await? {
                Reserved::Yes => PickOutcome::Reserved,
                Reserved::Taken => PickOutcome::Taken,
                Reserved::No => PickOutcome::AtCapacity,
            },
        )
    }

    async fn session_started(
        &self,
        conversation: &ConversationId,
        agent: &AgentId,
        units: u32,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let mut tx = self
            .writer
            .begin_with(BEGIN_WRITE)
            .await
            .map_err(from_sqlx)?;
        // The agent's row first, as reservations lock it, so that the two never wait for
        // each other in a circle.
        sqlx::query(&agent_lock())
            .bind(agent.as_str())
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        sqlx::query(q::AGENT_ASSIGNED)
            .bind(agent.as_str())
            .bind(millis(now))
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        sqlx::query(q::START_SESSION)
            .bind(conversation.as_str())
            .bind(agent.as_str())
            .bind(i64::from(units))
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)
    }

    async fn offer_ended(
        &self,
        conversation: &ConversationId,
        agent: &AgentId,
        until: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        match until {
            None => self.end_work(q::END_RESERVATION, conversation, agent).await,
            Some(until) => {
                sqlx::query(q::END_RESERVATION_UNTIL)
                    .bind(conversation.as_str())
                    .bind(agent.as_str())
                    .bind(millis(until))
                    .execute(&self.writer)
                    .await
                    .map_err(from_sqlx)?;
                Ok(())
            }
        }
    }

    async fn renewal_unused(
        &self,
        conversation: &ConversationId,
        agent: &AgentId,
        renewed_until: SystemTime,
        offer_until: SystemTime,
    ) -> Result<(), StoreError> {
        sqlx::query(q::RENEWAL_UNUSED)
            .bind(conversation.as_str())
            .bind(agent.as_str())
            .bind(millis(renewed_until))
            .bind(millis(offer_until))
            .execute(&self.writer)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    async fn session_released(
        &self,
        conversation: &ConversationId,
        agent: &AgentId,
    ) -> Result<(), StoreError> {
        self.end_work(q::END_SESSION, conversation, agent).await
    }
}
