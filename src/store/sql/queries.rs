//! The SQL both backends run, as named statements (the few that differ between SQLite and
//! PostgreSQL are in each backend's `dialect`). Placeholders are `$1`, `$2`, … on both.

/// The table of applied migrations.
pub(super) const CREATE_SCHEMA_VERSION: &str =
    "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)";

/// The highest migration applied.
pub(super) const SCHEMA_VERSION_FOUND: &str = "SELECT MAX(version) FROM schema_version";

/// Records a migration as applied.
pub(super) const RECORD_SCHEMA_VERSION: &str = "INSERT INTO schema_version (version) VALUES ($1)";

/// Appends a transcript line.
pub(super) const INSERT_LINE: &str =
    "INSERT INTO transcript (conversation, body, at_ms, effect_key) VALUES ($1, $2, $3, $4)";

/// Records a sent message's id and send time on the line of its effect, unless it has one.
pub(super) const SENT_LINE: &str =
    "UPDATE transcript SET sent_mid = $2, sent_ms = $3 WHERE effect_key = $1 AND sent_mid IS NULL";

/// Records an echoed message's id, or its time when its delivery recorded the id already
/// (the platform's time wins).
pub(super) const SENT_LINE_ECHOED: &str = "UPDATE transcript SET sent_mid = $2, sent_ms = $3 WHERE effect_key = $1 AND (sent_mid IS NULL OR sent_mid = $2)";

/// A customer's open conversation on a page.
pub(super) const FIND_OPEN: &str =
    "SELECT body, version FROM conversations WHERE page = $1 AND customer = $2 AND closed = 0";

/// A customer's most recent conversation on a page, open or closed.
pub(super) const FIND_LATEST: &str = "SELECT body, version FROM conversations WHERE page = $1 AND customer = $2 ORDER BY created_ms DESC, id DESC LIMIT 1";

/// A customer's conversations on a page, the most recent first.
pub(super) const HISTORY: &str = "SELECT body, version FROM conversations WHERE page = $1 AND customer = $2 ORDER BY created_ms DESC, id DESC LIMIT $3";

/// A conversation by id.
pub(super) const LOAD: &str = "SELECT body, version FROM conversations WHERE id = $1";

/// Conversations by id (the list of ids follows).
pub(super) const LOAD_MANY_PREFIX: &str = "SELECT body, version FROM conversations WHERE id IN (";

/// Marks an inbox event applied, only if it was still pending.
pub(super) const MARK_APPLIED: &str = "UPDATE inbox SET applied = 1 WHERE seq = $1 AND applied = 0";

/// A new conversation, at version 1.
pub(super) const INSERT_CONVERSATION: &str = "INSERT INTO conversations (id, page, customer, state, agent, closed, version, deadline_ms, created_ms, body, queue, queued_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9, $10, $11)";

/// A conversation, only at the version it was read at.
pub(super) const UPDATE_CONVERSATION: &str =
    "UPDATE conversations SET state = $2, agent = $3, closed = $4, version = version + 1,
                     deadline_ms = $5, body = $6, queue = $8, queued_ms = $9 WHERE id = $1 AND version = $7";

/// Whether a conversation exists.
pub(super) const CONVERSATION_EXISTS: &str = "SELECT 1 FROM conversations WHERE id = $1";

/// An effect into the outbox, claimed by the committing instance.
pub(super) const INSERT_EFFECT: &str = "INSERT INTO outbox (key, conversation, body, done, claimed_by, claimed_until_ms, next_ms, created_ms)
                 VALUES ($1, $2, $3, 0, $4, $5, $6, $6)";

/// A transcript, in the order of its lines' times.
pub(super) const TRANSCRIPT: &str =
    "SELECT body, sent_mid, sent_ms FROM transcript WHERE conversation = $1 ORDER BY at_ms, id";

/// A transcript with its row ids, in the order written.
pub(super) const TRANSCRIPT_WITH_IDS: &str =
    "SELECT id, body, sent_mid, sent_ms FROM transcript WHERE conversation = $1 ORDER BY id";

/// Replaces a transcript line, only if it is still as read.
pub(super) const REPLACE_LINE: &str = "UPDATE transcript SET body = $1 WHERE id = $2 AND body = $3";

/// Open conversations whose deadline has come.
pub(super) const DUE_CONVERSATIONS: &str =
    "SELECT id FROM conversations WHERE closed = 0 AND deadline_ms <= $1";

/// Extends a holder's claim on an effect, only if it has not lapsed.
pub(super) const RENEW_CLAIM: &str = "UPDATE outbox SET claimed_until_ms = $3 WHERE key = $1 AND claimed_by = $2 AND done = 0 AND claimed_until_ms > $4";

/// Lets go of all of a holder's claims.
pub(super) const DROP_CLAIMS: &str =
    "UPDATE outbox SET claimed_until_ms = 0 WHERE claimed_by = $1 AND done = 0";

/// Removes a delivered effect.
pub(super) const COMPLETE_EFFECT: &str = "DELETE FROM outbox WHERE key = $1 AND done = 0";

/// Removes delivered effects (the list of keys follows).
pub(super) const COMPLETE_EFFECTS_PREFIX: &str = "DELETE FROM outbox WHERE done = 0 AND key IN (";

/// Records a failed attempt at an effect and when to try again (holder only).
pub(super) const RESCHEDULE_EFFECT: &str =
    "UPDATE outbox SET attempts = attempts + $3, next_ms = $4, last_error = $5, unconfirmed = $6,
             claimed_by = NULL, claimed_until_ms = NULL, interrupted = 0
             WHERE key = $1 AND claimed_by = $2 AND done = 0 RETURNING attempts";

/// Gives up on an effect, keeping its error (holder only).
pub(super) const FAIL_EFFECT: &str =
    "UPDATE outbox SET done = 2, last_error = $3, claimed_by = NULL, claimed_until_ms = NULL
             WHERE key = $1 AND claimed_by = $2 AND done = 0 RETURNING conversation";

/// How many effects are pending, and the oldest one's creation time.
pub(super) const OUTBOX_PENDING_STATS: &str =
    "SELECT COUNT(*), MIN(created_ms) FROM outbox WHERE done = 0";

/// How many effects were given up on.
pub(super) const OUTBOX_FAILED_COUNT: &str = "SELECT COUNT(*) FROM outbox WHERE done = 2";

/// Inserts inbox events (the rows follow).
pub(super) const INBOX_INSERT_PREFIX: &str =
    "INSERT INTO inbox (key, thread, body, received_ms, applied) ";

/// Forgets applied events older than the dedup window (the cut-off and keys follow).
pub(super) const INBOX_FORGET_PREFIX: &str =
    "DELETE FROM inbox WHERE applied = 1 AND received_ms <= ";

/// The last inbox row written.
pub(super) const INBOX_LAST_SEQ: &str = "SELECT MAX(seq) FROM inbox";

/// The keys of the inbox rows written after one.
pub(super) const INBOX_SINCE: &str = "SELECT key, thread FROM inbox WHERE seq > $1";

/// Records webhook bodies (the rows follow).
pub(super) const WEBHOOK_INSERT_PREFIX: &str = "INSERT INTO webhooks (body, received_ms) ";

/// Recorded webhook bodies after a place, in order of receipt.
pub(super) const WEBHOOKS_AFTER: &str =
    "SELECT seq, body, received_ms FROM webhooks WHERE seq > $1 ORDER BY seq LIMIT $2";

/// Forgets an unpacked webhook body.
pub(super) const WEBHOOK_DELETE: &str = "DELETE FROM webhooks WHERE seq = $1";

/// Inserts one inbox event.
pub(super) const INBOX_INSERT_ONE: &str =
    "INSERT INTO inbox (key, thread, body, received_ms, applied) VALUES ($1, $2, $3, $4, 0)";

/// A thread's pending events, in order of receipt.
pub(super) const INBOX_OF_THREAD: &str = "SELECT seq, key, body, attempts, retry_ms FROM inbox WHERE thread = $1 AND applied = 0 ORDER BY seq LIMIT $2";

/// Pending events of every thread from a place in the order of receipt on.
pub(super) const INBOX_PENDING: &str = "SELECT seq, key, thread, body, attempts, retry_ms FROM inbox WHERE applied = 0 AND seq >= $1 ORDER BY seq LIMIT $2";

/// Threads with pending events received by a time and not waiting to be tried again.
pub(super) const INBOX_THREADS: &str =
    "SELECT thread FROM inbox WHERE applied = 0 AND received_ms <= $1
             GROUP BY thread HAVING MAX(retry_ms) <= $1 ORDER BY MIN(seq) LIMIT $2";

/// Records a failed attempt at an inbox event.
pub(super) const INBOX_FAILED: &str =
    "UPDATE inbox SET attempts = attempts + 1, retry_ms = $2, last_error = $3
             WHERE seq = $1 AND applied = 0 RETURNING attempts";

/// Sets an inbox event aside.
pub(super) const INBOX_DEAD: &str =
    "UPDATE inbox SET applied = 2, last_error = $2 WHERE seq = $1 AND applied = 0";

/// Forgets applied events received before a time.
pub(super) const PURGE_INBOX: &str = "DELETE FROM inbox WHERE applied = 1 AND received_ms < $1";

/// Stores media under its content key.
pub(super) const PUT_MEDIA: &str =
    "INSERT INTO media (key, content_type, bytes) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING";

/// Deletes media by key.
pub(super) const DELETE_MEDIA: &str = "DELETE FROM media WHERE key = $1";

/// Media by key.
pub(super) const GET_MEDIA: &str = "SELECT bytes, content_type FROM media WHERE key = $1";

/// An agent's open conversations, oldest first.
pub(super) const OPEN_OF_AGENT: &str = "SELECT body, version FROM conversations WHERE agent = $1 AND closed = 0 ORDER BY created_ms, id";

/// Every open conversation, oldest first.
pub(super) const ALL_OPEN: &str =
    "SELECT body, version FROM conversations WHERE closed = 0 ORDER BY created_ms, id";

/// Conversations waiting for an offer, oldest first.
pub(super) const QUEUED: &str = "SELECT body, version FROM conversations WHERE closed = 0 AND state = 'open' AND agent IS NULL ORDER BY created_ms, id";

/// A queue's conversations waiting for an offer or a pick, oldest first.
pub(super) const QUEUE_WAITING: &str = "SELECT body, version FROM conversations WHERE queue = $1 AND closed = 0 AND state = 'open' AND agent IS NULL ORDER BY created_ms, id LIMIT $2";

/// Conversations of no queue (saved before queues existed) waiting, oldest first.
pub(super) const NO_QUEUE_WAITING: &str = "SELECT body, version FROM conversations WHERE queue IS NULL AND closed = 0 AND state = 'open' AND agent IS NULL ORDER BY created_ms, id LIMIT $1";

/// The first conversations waiting for an offer or a pick, in the order of their places
/// (at most `$1`).
pub(super) const QUEUED_FIRST: &str = "SELECT body, version, queued_ms, id FROM conversations WHERE closed = 0 AND agent IS NULL ORDER BY queued_ms, id LIMIT $1";

/// The conversations waiting after a place (`$1` ms, then the id `$2`), in the order of
/// their places (at most `$3`): the row value makes it a range of the index of places (no
/// offset, and no scan of the rows of the place's millisecond).
pub(super) const QUEUED_AFTER: &str = "SELECT body, version, queued_ms, id FROM conversations WHERE closed = 0 AND agent IS NULL AND (queued_ms, id) > ($1, $2) ORDER BY queued_ms, id LIMIT $3";

/// How many conversations of no queue wait ahead of a place (`$1` ms, then the id `$2`):
/// waiting with no offer is `closed = 0 AND agent IS NULL` (an open conversation has an
/// agent when it is offered or held), the condition of the indexes of places; the row value
/// `(queued_ms, id)` is a range of them, also when many conversations share a millisecond.
/// (A queue's count, `dialect::QUEUE_AHEAD`, is spelt for each backend's planner.)
pub(super) const NO_QUEUE_AHEAD: &str = "SELECT COUNT(*) FROM conversations WHERE queue IS NULL AND closed = 0 AND agent IS NULL AND (queued_ms, id) < ($1, $2)";

/// Adds an agent (offline), or updates their capacity and skills.
pub(super) const UPSERT_AGENT: &str =
    "INSERT INTO routing_agents (agent, presence, capacity, skills) VALUES ($1, 'offline', $2, $3)
    ON CONFLICT (agent) DO UPDATE SET capacity = excluded.capacity, skills = excluded.skills";

/// Sets an agent's presence (a new agent: the default capacity, no skills).
pub(super) const UPSERT_PRESENCE: &str =
    "INSERT INTO routing_agents (agent, presence, capacity, skills) VALUES ($1, $2, $3, '{}')
    ON CONFLICT (agent) DO UPDATE SET presence = excluded.presence";

/// Adds an agent unknown so far (offline, the default capacity, no skills).
pub(super) const ENSURE_AGENT: &str = "INSERT INTO routing_agents (agent, presence, capacity, skills) VALUES ($1, 'offline', $2, '{}')
    ON CONFLICT (agent) DO NOTHING";

/// One agent (`$2`) with the units in use at `$1` (sessions, and reservations not lapsed)
/// and the units of sessions, read by the agent's index.
pub(super) const AGENT_STATUS: &str = "SELECT a.agent, a.presence, a.capacity, a.skills, a.last_assigned_ms,
    CAST(COALESCE((SELECT SUM(w.units) FROM routing_work w WHERE w.agent = a.agent AND (w.kind = 1 OR w.until_ms > $1)), 0) AS BIGINT),
    CAST(COALESCE((SELECT SUM(w.units) FROM routing_work w WHERE w.agent = a.agent AND w.kind = 1), 0) AS BIGINT)
    FROM routing_agents a WHERE a.agent = $2";

/// Every agent with the units in use at `$1` (sessions, and reservations not lapsed) and the
/// units of sessions: one pass over the work, grouped by agent (not two lookups per agent).
pub(super) const AGENT_STATUSES: &str =
    "SELECT a.agent, a.presence, a.capacity, a.skills, a.last_assigned_ms,
    CAST(COALESCE(u.used, 0) AS BIGINT), CAST(COALESCE(u.sessions, 0) AS BIGINT)
    FROM routing_agents a LEFT JOIN (
        SELECT agent,
            SUM(CASE WHEN kind = 1 OR until_ms > $1 THEN units ELSE 0 END) AS used,
            SUM(CASE WHEN kind = 1 THEN units ELSE 0 END) AS sessions
        FROM routing_work GROUP BY agent
    ) u ON u.agent = a.agent";

/// Available agents as [`AGENT_STATUSES`] gives them, but for the units they hold of the
/// conversation `$2` (an offer being made again counts once).
pub(super) const AVAILABLE_AGENTS_EXCEPT: &str = "SELECT a.agent, a.presence, a.capacity, a.skills, a.last_assigned_ms,
    CAST(COALESCE(u.used, 0) AS BIGINT), CAST(COALESCE(u.sessions, 0) AS BIGINT)
    FROM routing_agents a LEFT JOIN (
        SELECT agent,
            SUM(CASE WHEN conversation <> $2 AND (kind = 1 OR until_ms > $1) THEN units ELSE 0 END) AS used,
            SUM(CASE WHEN kind = 1 THEN units ELSE 0 END) AS sessions
        FROM routing_work GROUP BY agent
    ) u ON u.agent = a.agent
    WHERE a.presence = 'available'";

/// Whether anyone holds the conversation's session or a pick of it not lapsed at `$2`.
pub(super) const CONVERSATION_HELD: &str = "SELECT CAST(1 AS BIGINT) FROM routing_work WHERE conversation = $1 AND (kind = 1 OR (kind = 2 AND until_ms > $2)) LIMIT 1";

/// Whether anyone holds the conversation: a session, or a reservation not lapsed at `$2`.
pub(super) const CONVERSATION_RESERVED: &str = "SELECT CAST(1 AS BIGINT) FROM routing_work WHERE conversation = $1 AND (kind = 1 OR until_ms > $2) LIMIT 1";

/// An agent's row for a conversation: kind, and until when.
pub(super) const WORK_OF: &str =
    "SELECT kind, until_ms FROM routing_work WHERE conversation = $1 AND agent = $2";

/// Forgets a conversation's lapsed reservations (an offer's or a pick's).
pub(super) const DROP_LAPSED_WORK: &str =
    "DELETE FROM routing_work WHERE conversation = $1 AND kind <> 1 AND until_ms <= $2";

/// Renews an agent's offer of a conversation until `$3`.
pub(super) const RENEW_OFFER: &str = "UPDATE routing_work SET until_ms = $3 WHERE conversation = $1 AND agent = $2 AND kind = 0 AND until_ms < $3";

/// The units an agent has in use at `$2`.
pub(super) const AGENT_UNITS_IN_USE: &str = "SELECT CAST(COALESCE(SUM(units), 0) AS BIGINT) FROM routing_work WHERE agent = $1 AND (kind = 1 OR until_ms > $2)";

/// A reservation for an offer (`$4` = 0) or a pick (`$4` = 2), until `$5`.
pub(super) const RESERVE_WORK: &str = "INSERT INTO routing_work (conversation, agent, units, kind, until_ms) VALUES ($1, $2, $3, $4, $5)";

/// When an agent was last given work (never moved back).
pub(super) const AGENT_ASSIGNED: &str = "UPDATE routing_agents SET last_assigned_ms = $2 WHERE agent = $1 AND (last_assigned_ms IS NULL OR last_assigned_ms < $2)";

/// A session: the agent's reservation of the conversation becomes it, or it is added.
pub(super) const START_SESSION: &str = "INSERT INTO routing_work (conversation, agent, units, kind, until_ms) VALUES ($1, $2, $3, 1, NULL)
    ON CONFLICT (conversation, agent) DO UPDATE SET units = excluded.units, kind = 1, until_ms = NULL";

/// Sets an agent's presence after an offer that they missed or rejected at `$3`: only while
/// they are available, and for an offer that ended after the last one that set it.
pub(super) const PRESENCE_AFTER_OFFER: &str = "UPDATE routing_agents SET presence = $2, presence_set_after_ms = $3
    WHERE agent = $1 AND presence = 'available' AND (presence_set_after_ms IS NULL OR presence_set_after_ms < $3)";

/// Sets a reservation renewed until `$3` for an offer not made back to the outstanding offer's
/// end, `$4`, unless renewed again since.
pub(super) const RENEWAL_UNUSED: &str = "UPDATE routing_work SET until_ms = $4
    WHERE conversation = $1 AND agent = $2 AND kind = 0 AND until_ms = $3";

/// Ends an agent's reservations (offer, pick) of a conversation.
pub(super) const END_RESERVATION: &str =
    "DELETE FROM routing_work WHERE conversation = $1 AND agent = $2 AND kind <> 1";

/// Ends an agent's reservation of a conversation that lapses no later than `$3` (a renewed
/// one, lapsing later, stays).
pub(super) const END_RESERVATION_UNTIL: &str = "DELETE FROM routing_work WHERE conversation = $1 AND agent = $2 AND kind <> 1 AND until_ms <= $3";

/// Ends an agent's session of a conversation.
pub(super) const END_SESSION: &str =
    "DELETE FROM routing_work WHERE conversation = $1 AND agent = $2 AND kind = 1";
