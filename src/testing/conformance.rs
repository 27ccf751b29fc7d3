//! The contract of [`ConversationStore`] and [`MediaStore`] as one suite, for a host's own
//! backend: [`run`] checks every rule the engine relies on, and panics naming the rule a
//! backend broke.
//!
//! The crate's memory, SQLite and PostgreSQL stores pass it in the crate's own tests. A host
//! with another database runs it from a test of its own:
//!
//! ```
//! use std::sync::Arc;
//! use messenger_channel::store::{InMemoryMediaStore, InMemoryStore};
//! use messenger_channel::testing::conformance;
//!
//! #[tokio::main]
//! async fn main() {
//!     // In a host's tests: `#[tokio::test] async fn my_store_conforms()`, with its store
//!     // (connected to a database of its own) in place of the memory one.
//!     let store = Arc::new(InMemoryStore::new());
//!     conformance::run(store, &InMemoryMediaStore::new()).await;
//! }
//! ```
//!
//! The suite writes conversations, transcripts, outbox effects, inbox events and files under
//! names unique to the run, and leaves them there: point it at a database for tests. It may
//! share that database with other runs at the same time. It calls `tokio::spawn` to race
//! callers, so it runs inside a tokio runtime, on one thread or several.
//!
//! | check | the contract |
//! |---|---|
//! | `stale_save_is_a_conflict` | `commit` with a stale `expected_version` fails with `Conflict` and overwrites nothing; updating a conversation never created fails with `NotFound` |
//! | `one_open_conversation_per_customer` | at most one open conversation per page and customer: creating a second fails with `Conflict`; once the first is closed, a new one opens; `history` lists the customer's conversations on the page (open and closed, no other customer's), the first being `find_latest`'s, at most `limit` |
//! | `concurrent_creates_make_one` | of concurrent creates for one page and customer, exactly one succeeds |
//! | `transcript_is_append_only_and_ordered` | the transcript is append-only and read in order; a failed commit appends nothing; `append` to an unknown conversation fails with `NotFound` |
//! | `removed_messages_are_forgotten` | `forget_message` turns the customer's lines of a message and its edits into the removal (`TranscriptLine::forgotten_by`), in place, once; never another author's line or a reaction |
//! | `sent_messages_get_their_id` | `complete_sent` delivers each effect and gives the line committed with it (`Commit::sent_lines`) its id and send time, the first record only, even after `complete`; a key with no line only completes its effect |
//! | `listing_by_agent_and_due` | `list_for_agent` lists what an agent holds or was offered, never closed conversations; `due` lists what has a deadline passed; `list_open` lists the open ones |
//! | `waiting_conversations_ahead_are_counted` | `queued_ahead` counts the conversations of a queue (or of no queue) waiting with no offer, paused ones too, whose place (the time they last went to the queue, then the id) is before the one given: never one offered, held, closed or of another queue; a conversation transferred back to the queue counts from then, not from its start |
//! | `waiting_conversations_are_read_in_pages` | `list_queued_after` lists the conversations waiting with no offer (paused ones too; of every queue, and of none) in the order of their places, from the first or after the place given, at most `limit`: pages read each after the last place of the one before see each once, in order, a conversation transferred back to the queue at the transfer's place, two at one time by id |
//! | `outbox_keeps_effects_until_completed` | a commit's effects are pending under the keys `conversation:version:index`, in order, claimed by their committer for its lease, until `complete` |
//! | `outbox_claims_retries_and_failures` | a claim is exclusive until released or lapsed, renewed only by its holder; only the holder reschedules or fails an effect; a retry waits until due and counts attempts when told to; `fail_effect` appends its lines in the same step |
//! | `batches_load_and_complete_together` | `load_all` returns the conversations that exist; `complete_all` completes exactly the keys given |
//! | `concurrent_claims_never_share` | concurrent `claim_effects` calls never hand one effect to two callers |
//! | `inbox_records_once_and_applies_with_the_commit` | `receive` records an event once (a redelivery, or a repeat in one call, is a duplicate), pending in order of receipt; a commit that `applies` it marks it applied in the same step (twice: `Conflict`, nothing saved); `inbox_done` marks it once; applied keys are remembered for `keep`, pending ones for ever |
//! | `concurrent_receives_record_once` | of concurrent `receive` calls with one key, exactly one records it |
//! | `inbox_threads_oldest_first` | `inbox_threads` lists the threads with events pending and received by the time given, oldest first |
//! | `inbox_failures_back_off_and_can_be_set_aside` | an event is named by its thread and key; `inbox_failed` counts attempts and leaves its thread out until the retry time; `inbox_dead` sets it aside, still a duplicate and never purged; `purge_inbox` forgets applied events only |
//! | `webhooks_are_kept_until_unpacked` | `record_webhook` keeps a body byte for byte (also when many record at once) at a place after every earlier one, never given again; `webhooks` lists those after a place, in order of receipt, at most `limit`; `unpack_webhook` forgets the body and records its events as `receive` does, in one step; a body no longer there (unpacked again, or by two at once) records nothing |
//! | `media_round_trip` | `MediaStore::put` returns a key that `get` resolves to the same bytes and type, the same key for the same bytes of one conversation and another key for another conversation's; an unknown key is `None`; after `delete` says `true` the key resolves to nothing and the other conversation's copy stays |
//!
//! [`run_profiles`] holds a [`ProfileStore`](crate::profile::ProfileStore) (customers' names
//! and pictures) to its contract; its checks are listed on it.
//!
//! [`run_router`] holds an [`AgentRouter`](crate::agents::AgentRouter) to its contract the
//! same way, through two handles on one backend (two connection pools on one database, or
//! the same in-memory router twice), racing them; its checks are listed on it.

mod profiles;
mod router;

pub use profiles::run_profiles;
pub use router::run_router;

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use super::t0;
use crate::conversation::{
    Author, CloseReason, Conversation, ConversationConfig, DEFAULT_AUTO_CLOSE_OPEN_ACTIVE, Effect,
    Inbound, Input, LineBody, State, TranscriptLine,
};
use crate::ids::{AgentId, ConversationId, PageId, QueueId, UserId};
use crate::store::{
    Commit, ConversationStore, Lease, MediaStore, NewInboxEvent, PendingEffect, QueuePlace, Queued,
    Retry, StoreError,
};

/// Runs every check against one backend: its conversation store and its media store (the
/// same value when one type is both, as `SqliteStore` is).
///
/// `S` is the store's type, or `dyn ConversationStore` for an `Arc<dyn ConversationStore>`.
///
/// # Panics
///
/// At the first contract the backend breaks, with a message that names the check, states the
/// contract and gives the failed assertion (`store conformance: <check> failed ...`); also if
/// the store returns an error where the contract expects success, or outside a tokio runtime.
pub async fn run<S>(store: Arc<S>, media: &dyn MediaStore)
where
    S: ConversationStore + ?Sized + 'static,
{
    let s = &*store;
    // Each check runs under its name, which finds its contract in `CHECKS`.
    macro_rules! checks {
        ($($check:ident($arg:expr)),* $(,)?) => {$(
            check(stringify!($check), $check($arg)).await;
        )*};
    }
    checks!(
        stale_save_is_a_conflict(s),
        one_open_conversation_per_customer(s),
        concurrent_creates_make_one(store.clone()),
        transcript_is_append_only_and_ordered(s),
        removed_messages_are_forgotten(s),
        sent_messages_get_their_id(s),
        listing_by_agent_and_due(s),
        waiting_conversations_ahead_are_counted(s),
        waiting_conversations_are_read_in_pages(s),
        outbox_keeps_effects_until_completed(s),
        outbox_claims_retries_and_failures(s),
        batches_load_and_complete_together(s),
        concurrent_claims_never_share(store.clone()),
        inbox_records_once_and_applies_with_the_commit(s),
        concurrent_receives_record_once(store.clone()),
        inbox_threads_oldest_first(s),
        inbox_failures_back_off_and_can_be_set_aside(s),
        webhooks_are_kept_until_unpacked(store.clone()),
        media_round_trip(media),
    );
}

/// Each check's name and the contract it holds the store to, as in the module docs' table.
const CHECKS: [(&str, &str); 19] = [
    (
        "stale_save_is_a_conflict",
        "`commit` with a stale `expected_version` fails with `Conflict` and overwrites nothing; updating a conversation never created fails with `NotFound`",
    ),
    (
        "one_open_conversation_per_customer",
        "at most one open conversation per page and customer: creating a second fails with `Conflict`; once the first is closed, a new one opens; `history` lists the customer's conversations on the page (open and closed, no other customer's), the first being `find_latest`'s, at most `limit`",
    ),
    (
        "concurrent_creates_make_one",
        "of concurrent creates for one page and customer, exactly one succeeds",
    ),
    (
        "transcript_is_append_only_and_ordered",
        "the transcript is append-only and read in order; a failed commit appends nothing; `append` to an unknown conversation fails with `NotFound`",
    ),
    (
        "removed_messages_are_forgotten",
        "`forget_message` turns the customer's lines of a message and its edits into the removal (`TranscriptLine::forgotten_by`), in place, once; never another author's line or a reaction",
    ),
    (
        "sent_messages_get_their_id",
        "`complete_sent` delivers each effect and gives the line committed with it (`Commit::sent_lines`) its id and send time, the first record only, even after `complete`; a key with no line only completes its effect",
    ),
    (
        "listing_by_agent_and_due",
        "`list_for_agent` lists what an agent holds or was offered, never closed conversations; `due` lists what has a deadline passed; `list_open` lists the open ones",
    ),
    (
        "waiting_conversations_ahead_are_counted",
        "`queued_ahead` counts the conversations of a queue (or of no queue) waiting with no offer, paused ones too, whose place (the time they last went to the queue, then the id) is before the one given: never one offered, held, closed or of another queue; a conversation transferred back to the queue counts from then, not from its start",
    ),
    (
        "waiting_conversations_are_read_in_pages",
        "`list_queued_after` lists the conversations waiting with no offer (paused ones too; of every queue, and of none) in the order of their places, from the first or after the place given, at most `limit`: pages read each after the last place of the one before see each once, in order, a conversation transferred back to the queue at the transfer's place, two at one time by id",
    ),
    (
        "outbox_keeps_effects_until_completed",
        "a commit's effects are pending under the keys `conversation:version:index`, in order, claimed by their committer for its lease, until `complete`",
    ),
    (
        "outbox_claims_retries_and_failures",
        "a claim is exclusive until released or lapsed, renewed only by its holder; only the holder reschedules or fails an effect; a retry waits until due and counts attempts when told to; `fail_effect` appends its lines in the same step",
    ),
    (
        "batches_load_and_complete_together",
        "`load_all` returns the conversations that exist; `complete_all` completes exactly the keys given",
    ),
    (
        "concurrent_claims_never_share",
        "concurrent `claim_effects` calls never hand one effect to two callers",
    ),
    (
        "inbox_records_once_and_applies_with_the_commit",
        "`receive` records an event once (a redelivery, or a repeat in one call, is a duplicate), pending in order of receipt; a commit that `applies` it marks it applied in the same step (twice: `Conflict`, nothing saved); `inbox_done` marks it once; applied keys are remembered for `keep`, pending ones for ever",
    ),
    (
        "concurrent_receives_record_once",
        "of concurrent `receive` calls with one key, exactly one records it",
    ),
    (
        "inbox_threads_oldest_first",
        "`inbox_threads` lists the threads with events pending and received by the time given, oldest first",
    ),
    (
        "inbox_failures_back_off_and_can_be_set_aside",
        "an event is named by its thread and key; `inbox_failed` counts attempts and leaves its thread out until the retry time; `inbox_dead` sets it aside, still a duplicate and never purged; `purge_inbox` forgets applied events only",
    ),
    (
        "webhooks_are_kept_until_unpacked",
        "`record_webhook` keeps a body byte for byte (also when many record at once) at a place after every earlier one, never given again; `webhooks` lists those after a place, in order of receipt, at most `limit`; `unpack_webhook` forgets the body and records its events as `receive` does, in one step; a body no longer there (unpacked again, or by two at once) records nothing",
    ),
    (
        "media_round_trip",
        "`MediaStore::put` returns a key that `get` resolves to the same bytes and type, the same key for the same bytes of one conversation and another key for another conversation's; an unknown key is `None`; after `delete` says `true` the key resolves to nothing and the other conversation's copy stays",
    ),
];

/// Runs the check `name`; a panic in it becomes one that names the check and its contract.
async fn check<F>(name: &str, fut: F)
where
    F: Future<Output = ()>,
{
    check_in(&CHECKS, "store", name, fut).await;
}

/// Runs the check `name` of the suite `suite`, whose contracts are in `checks`.
async fn check_in<F>(checks: &[(&str, &str)], suite: &str, name: &str, fut: F)
where
    F: Future<Output = ()>,
{
    let contract = checks
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("(not described)", |(_, c)| c);
    let mut fut = Box::pin(fut);
    let outcome = std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(())) => Poll::Ready(Ok(())),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(payload)),
        }
    })
    .await;
    if let Err(payload) = outcome {
        panic!(
            "{suite} conformance: {name} failed\n  the contract: {contract}\n  what failed: {}",
            panic_message(&*payload)
        );
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("(a panic without a message)")
}

/// A prefix unique to this run, so that backends shared between tests (PostgreSQL) do not mix.
fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}{}x{nanos}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn line(text: &str) -> TranscriptLine {
    TranscriptLine {
        at: t0(),
        author: Author::Customer,
        body: LineBody::Text(text.into()),
        mid: Some(text.into()),
        reply_to: None,
        sent_at: None,
    }
}

fn new_conversation(id: &str, page: &str, customer: &str) -> Conversation {
    Conversation::start(
        ConversationId::from(id),
        PageId::new(page.to_owned()),
        UserId::new(customer.to_owned()),
        Inbound::new(None, vec![]),
        t0(),
        &ConversationConfig::default(),
    )
    .0
}

/// `c` after `inputs`, applied at `at`: the machine is the only way to change a conversation.
fn after_at(
    c: &Conversation,
    at: SystemTime,
    inputs: impl IntoIterator<Item = Input>,
) -> Conversation {
    let mut c = c.clone();
    for input in inputs {
        c.apply(input, at, &ConversationConfig::default())
            .expect("a legal input");
    }
    c
}

/// `c` after `inputs`, applied at `t0`.
fn after(c: &Conversation, inputs: impl IntoIterator<Item = Input>) -> Conversation {
    after_at(c, t0(), inputs)
}

/// `c` (Open) offered to `agent`.
fn offered_to(c: &Conversation, agent: &AgentId) -> Conversation {
    after(c, [Input::OfferTo(agent.clone())])
}

/// `c` (Open) held by `agent`, Active.
fn held_by(c: &Conversation, agent: &AgentId) -> Conversation {
    after(
        c,
        [Input::OfferTo(agent.clone()), Input::Accept(agent.clone())],
    )
}

/// `c` (Open) taken by an agent, ended and closed by them.
fn closed_by_agent(c: &Conversation) -> Conversation {
    let agent = AgentId::from("closer");
    let closed = after(
        &held_by(c, &agent),
        [Input::End(agent.clone()), Input::CloseSession(agent)],
    );
    assert_eq!(
        closed.state(),
        &State::Closed {
            reason: CloseReason::Agent
        }
    );
    closed
}

/// `c` (not Waiting or in Wrap-up, last active at `t0`) closed automatically.
fn auto_closed(c: &Conversation) -> Conversation {
    let closed = after_at(c, t0() + DEFAULT_AUTO_CLOSE_OPEN_ACTIVE, [Input::Tick]);
    assert_eq!(
        closed.state(),
        &State::Closed {
            reason: CloseReason::AutoClose
        }
    );
    closed
}

fn create(c: &Conversation, lines: Vec<TranscriptLine>, effects: Vec<Effect>) -> Commit {
    Commit {
        conversation: c.clone(),
        expected_version: None,
        transcript: lines,
        effects,
        deadline: Some(t0() + Duration::from_secs(60)),
        applies: None,
        at: t0(),
        claim: Some(lease("committer", 0, 60)),
    }
}

/// A claim for `owner` made `from` seconds after `t0`, until `until` seconds after it.
fn lease(owner: &str, from: u64, until: u64) -> Lease {
    Lease {
        owner: owner.to_owned(),
        at: t0() + Duration::from_secs(from),
        until: t0() + Duration::from_secs(until),
    }
}

fn at(secs: u64) -> SystemTime {
    t0() + Duration::from_secs(secs)
}

fn update(c: &Conversation, version: u64, lines: Vec<TranscriptLine>) -> Commit {
    Commit {
        conversation: c.clone(),
        expected_version: Some(version),
        transcript: lines,
        effects: vec![],
        deadline: None,
        applies: None,
        at: t0(),
        claim: None,
    }
}

async fn stale_save_is_a_conflict<S: ConversationStore + ?Sized>(store: &S) {
    let run = unique("stale");
    let c = new_conversation(&run, &run, "u");
    let (v1, _) = store.commit(&create(&c, vec![], vec![])).await.unwrap();
    assert_eq!(v1, 1);
    let c = after(&c, [Input::ThreadTaken]);
    let (v2, _) = store.commit(&update(&c, 1, vec![])).await.unwrap();
    assert_eq!(v2, 2);
    let c = after(&c, [Input::ThreadReturned]);
    assert!(
        matches!(
            store.commit(&update(&c, 1, vec![])).await,
            Err(StoreError::Conflict)
        ),
        "stale save"
    );
    let stored = store.load(c.id()).await.unwrap().unwrap();
    assert_eq!(
        (stored.version, stored.conversation.is_paused()),
        (2, true),
        "the stale save did not overwrite"
    );
    let ghost = new_conversation(&unique("ghost"), &run, "v");
    assert!(matches!(
        store.commit(&update(&ghost, 1, vec![])).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn one_open_conversation_per_customer<S: ConversationStore + ?Sized>(store: &S) {
    let page = unique("page");
    let first = new_conversation(&unique("c"), &page, "alice");
    store.commit(&create(&first, vec![], vec![])).await.unwrap();
    let second = new_conversation(&unique("c"), &page, "alice");
    assert!(matches!(
        store.commit(&create(&second, vec![], vec![])).await,
        Err(StoreError::Conflict)
    ));
    // Another customer of the same page is fine.
    store
        .commit(&create(
            &new_conversation(&unique("c"), &page, "bob"),
            vec![],
            vec![],
        ))
        .await
        .unwrap();
    // Once the first closes, a new one can open.
    let closed = closed_by_agent(&first);
    store.commit(&update(&closed, 1, vec![])).await.unwrap();
    assert!(
        store
            .find_open(&PageId::new(page.clone()), &UserId::from("alice"))
            .await
            .unwrap()
            .is_none()
    );
    store
        .commit(&create(&second, vec![], vec![]))
        .await
        .unwrap();
    let open = store
        .find_open(&PageId::new(page.clone()), &UserId::from("alice"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(open.conversation.id(), second.id());
    // The customer's history: both, the latest first; no other customer's.
    let (page, alice) = (PageId::new(page), UserId::from("alice"));
    let history = store.history(&page, &alice, 10).await.unwrap();
    let mut ids: Vec<&str> = history
        .iter()
        .map(|s| s.conversation.id().as_str())
        .collect();
    let latest = store.find_latest(&page, &alice).await.unwrap().unwrap();
    assert_eq!(
        ids.first().copied(),
        Some(latest.conversation.id().as_str())
    );
    ids.sort_unstable();
    let mut expected = vec![first.id().as_str(), second.id().as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    assert_eq!(store.history(&page, &alice, 1).await.unwrap().len(), 1);
}

async fn concurrent_creates_make_one<S: ConversationStore + ?Sized + 'static>(store: Arc<S>) {
    let page = unique("race");
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (store, page) = (store.clone(), page.clone());
        tasks.push(tokio::spawn(async move {
            let c = new_conversation(&format!("{page}-{i}"), &page, "carol");
            store.commit(&create(&c, vec![], vec![])).await
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::Conflict) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(created, 1, "exactly one open conversation");
}

async fn transcript_is_append_only_and_ordered<S: ConversationStore + ?Sized>(store: &S) {
    let run = unique("t");
    let c = new_conversation(&run, &run, "u");
    store
        .commit(&create(&c, vec![line("1"), line("2")], vec![]))
        .await
        .unwrap();
    store.append(c.id(), vec![line("3")]).await.unwrap();
    store
        .commit(&update(&c, 1, vec![line("4"), line("5")]))
        .await
        .unwrap();
    store
        .append(c.id(), vec![line("6"), line("7")])
        .await
        .unwrap();
    let texts: Vec<_> = store
        .transcript(c.id())
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.mid.unwrap())
        .collect();
    assert_eq!(texts, ["1", "2", "3", "4", "5", "6", "7"]);
    // A failed (stale) commit appends nothing.
    assert!(store.commit(&update(&c, 1, vec![line("x")])).await.is_err());
    assert_eq!(store.transcript(c.id()).await.unwrap().len(), 7);
    assert!(matches!(
        store
            .append(
                &ConversationId::from(unique("none").as_str()),
                vec![line("y")]
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
}

async fn removed_messages_are_forgotten<S: ConversationStore + ?Sized>(store: &S) {
    use crate::conversation::ReactionLine;

    let run = unique("f");
    let c = new_conversation(&run, &run, "u");
    let by = |author: Author, at_s: u64, body: LineBody, mid: Option<&str>| TranscriptLine {
        at: at(at_s),
        author,
        body,
        mid: mid.map(str::to_owned),
        reply_to: None,
        sent_at: None,
    };
    let gone = LineBody::Text("my card is 4111".into());
    let file = LineBody::File(crate::conversation::FileLine {
        name: "card.png".into(),
        kind: "image".into(),
        url: None,
        media_key: Some("k".into()),
        size: None,
        rejected: None,
        media: crate::conversation::MediaState::Stored,
    });
    let edit = LineBody::Edit {
        of: "gone".into(),
        text: "secret!".into(),
        edit_count: 1,
    };
    let reaction = LineBody::Reaction(ReactionLine::new(Some("gone".into()), None, false));
    let lines = vec![
        // The message's lines (a text and a file), its edit: forgotten.
        by(Author::Customer, 0, gone, Some("gone")),
        by(Author::Customer, 0, file, Some("gone")),
        by(Author::Customer, 2, edit, None),
        // Not the customer's message, or not its words: kept.
        line("stays"),
        by(
            Author::Agent(AgentId::from("alice")),
            1,
            LineBody::Text("ok".into()),
            None,
        ),
        by(
            Author::PageInbox,
            1,
            LineBody::Text("from the inbox".into()),
            Some("gone"),
        ),
        by(Author::Customer, 3, reaction.clone(), None),
    ];
    store
        .commit(&create(&c, lines.clone(), vec![]))
        .await
        .unwrap();
    let before = store.transcript(c.id()).await.unwrap();
    let expected: Vec<TranscriptLine> = before
        .iter()
        .map(|l| l.forgotten_by("gone").unwrap_or_else(|| l.clone()))
        .collect();
    let forgotten = store.forget_message(c.id(), "gone").await.unwrap();
    let removed = LineBody::Unsent { of: "gone".into() };
    assert_eq!(
        forgotten.len(),
        3,
        "the message's two lines and its edit: {forgotten:?}"
    );
    assert!(forgotten.iter().all(|l| l.body == removed));
    // Twice is once.
    assert!(
        store
            .forget_message(c.id(), "gone")
            .await
            .unwrap()
            .is_empty()
    );
    // Each line as `TranscriptLine::forgotten_by` has it, in place, with its time and author.
    assert_eq!(store.transcript(c.id()).await.unwrap(), expected);
    let kept: Vec<_> = expected
        .iter()
        .filter(|l| l.body != removed)
        .map(|l| l.author.clone())
        .collect();
    assert_eq!(kept.len(), 4, "{expected:?}");
    assert!(expected.iter().any(|l| l.body == reaction));
}

#[allow(clippy::too_many_lines)] // one contract, step by step
async fn sent_messages_get_their_id<S: ConversationStore + ?Sized>(store: &S) {
    use crate::conversation::Outgoing;
    use crate::store::SentMessage;

    let run = unique("sent");
    let c = new_conversation(&run, &run, "u");
    let alice = AgentId::from("alice");
    let said = |text: &str| TranscriptLine {
        at: at(1),
        author: Author::Agent(alice.clone()),
        body: LineBody::Text(text.into()),
        mid: None,
        reply_to: None,
        sent_at: None,
    };
    let send = |text: &str| Effect::Send {
        agent: Some(alice.clone()),
        message: Outgoing::Text(text.into()),
    };
    let commit = create(
        &c,
        vec![line("customer"), said("ok"), said("ok"), said("other")],
        vec![
            send("ok"),
            Effect::Send {
                agent: None,
                message: Outgoing::PrivacyNotice("recorded".into()),
            },
            send("ok"),
            send("other"),
        ],
    );
    assert_eq!(commit.sent_lines(), [(1, 0), (2, 2), (3, 3)]);
    let (_, pending) = store.commit(&commit).await.unwrap();
    let key = |i: usize| pending[i].key.clone();
    let mids = || async {
        store
            .transcript(c.id())
            .await
            .unwrap()
            .into_iter()
            .map(|l| (l.mid, l.sent_at))
            .collect::<Vec<_>>()
    };
    let some = |m: &str, s: u64| (Some(m.to_owned()), Some(at(s)));
    // The second "ok": its own line, not the first of that text; its effect is delivered.
    store
        .complete_sent(&[SentMessage::new(key(2), "m_2", at(3))])
        .await
        .unwrap();
    // The first wins: the same message recorded again (its echo) changes nothing.
    store
        .complete_sent(&[
            SentMessage::new(key(0), "m_0", at(4)),
            SentMessage::new(key(0), "m_again", at(9)),
        ])
        .await
        .unwrap();
    store
        .complete_sent(&[SentMessage::new(key(0), "m_later", at(10))])
        .await
        .unwrap();
    // No line (an automated message) or an unknown key: only the effect.
    store
        .complete_sent(&[
            SentMessage::new(key(1), "m_1", at(5)),
            SentMessage::new(format!("{}:99:0", c.id()), "m_x", at(5)),
        ])
        .await
        .unwrap();
    // An effect completed before still gets its line's id (an echo after the delivery).
    store.complete(&key(3)).await.unwrap();
    store
        .complete_sent(&[SentMessage::echoed(key(3), "m_3", at(6))])
        .await
        .unwrap();
    // The echo's time (the platform's clock) replaces the delivery's for the same id; an
    // echo with another id, or a later delivery's record, changes nothing.
    store
        .complete_sent(&[
            SentMessage::echoed(key(2), "m_2", at(7)),
            SentMessage::echoed(key(0), "m_other", at(8)),
            SentMessage::new(key(3), "m_3", at(9)),
        ])
        .await
        .unwrap();
    assert_eq!(
        mids().await,
        [
            (Some("customer".to_owned()), None),
            some("m_0", 4),
            some("m_2", 7),
            some("m_3", 6),
        ]
    );
    let left: Vec<String> = store
        .pending(1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.conversation == *c.id())
        .map(|p| p.key)
        .collect();
    assert!(left.is_empty(), "every effect delivered: {left:?}");
    // Nothing else: an empty call, and lines appended later, have no id.
    store.complete_sent(&[]).await.unwrap();
    store.append(c.id(), vec![said("ok")]).await.unwrap();
    store
        .complete_sent(&[SentMessage::new(key(0), "m_0", at(4))])
        .await
        .unwrap();
    assert_eq!(mids().await[4], (None, None));
}

async fn listing_by_agent_and_due<S: ConversationStore + ?Sized>(store: &S) {
    let run = unique("agents");
    let agent = AgentId::new(unique("agent"));
    let active = held_by(&new_conversation(&format!("{run}-a"), &run, "u1"), &agent);
    let offered = offered_to(&new_conversation(&format!("{run}-b"), &run, "u2"), &agent);
    let other = held_by(
        &new_conversation(&format!("{run}-c"), &run, "u3"),
        &AgentId::new(unique("other")),
    );
    for c in [&active, &offered, &other] {
        store.commit(&create(c, vec![], vec![])).await.unwrap();
    }
    let mut ids: Vec<_> = store
        .list_for_agent(&agent)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.conversation.id().clone())
        .collect();
    ids.sort();
    assert_eq!(ids, [active.id().clone(), offered.id().clone()]);
    // Closed conversations are not listed.
    let closed = auto_closed(&active);
    store.commit(&update(&closed, 1, vec![])).await.unwrap();
    assert_eq!(store.list_for_agent(&agent).await.unwrap().len(), 1);
    // Due: the deadline (t0 + 60 s) passed for the open ones only.
    let due = store.due(t0() + Duration::from_secs(61)).await.unwrap();
    assert!(due.contains(offered.id()) && due.contains(other.id()) && !due.contains(active.id()));
    assert!(
        !store
            .due(t0() + Duration::from_secs(59))
            .await
            .unwrap()
            .contains(offered.id())
    );
    assert!(
        store
            .list_open()
            .await
            .unwrap()
            .iter()
            .any(|s| s.conversation.id() == other.id())
    );
}

/// A time of this run's own for conversations it queues: the wall clock's microseconds read
/// as milliseconds, far after any real time, so that runs sharing a database (whose waiting
/// conversations of no queue count too) keep to windows of their own.
fn own_time() -> SystemTime {
    let micros = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(micros).unwrap())
}

/// Conversations waiting in queues, in places that their start times do not give: for the
/// checks of `queued_ahead` and of the queue's pages. Returns them by name (the
/// conversations as committed) and the run's start time.
#[allow(clippy::too_many_lines)] // one set-up, read top to bottom
async fn queue_places<S: ConversationStore + ?Sized>(
    store: &S,
    run: &str,
    queue: &QueueId,
    other: &QueueId,
) -> (
    std::collections::HashMap<&'static str, Conversation>,
    SystemTime,
) {
    let base = own_time();
    let ms = |n: u64| base + Duration::from_millis(n);
    let config = ConversationConfig::default();
    let start = |name: &str, queue: Option<&QueueId>, at: SystemTime, standby: bool| {
        Conversation::start_in_queue(
            queue.cloned(),
            ConversationId::new(format!("{run}-{name}")),
            PageId::new(run.to_owned()),
            UserId::new(name.to_owned()),
            Inbound::new(None, vec![LineBody::Text("hi".into())]).on_standby(standby),
            at,
            &config,
        )
        .0
    };
    let agent = AgentId::new(format!("{run}-agent"));
    let mut all = std::collections::HashMap::new();
    all.insert("a", start("a", Some(queue), ms(10), false));
    // Paused (another app holds the thread): still waiting in the queue.
    all.insert("b", start("b", Some(queue), ms(20), true));
    // Offered to an agent: not waiting for an offer.
    all.insert(
        "c",
        after_at(
            &start("c", Some(queue), ms(30), false),
            ms(30),
            [Input::OfferTo(agent.clone())],
        ),
    );
    // Started first, held, then transferred back to the queue: in it since then.
    all.insert(
        "d",
        after_at(
            &start("d", Some(queue), ms(1), false),
            ms(40),
            [
                Input::OfferTo(agent.clone()),
                Input::Accept(agent.clone()),
                Input::Transfer {
                    agent: agent.clone(),
                    to: crate::conversation::TransferTarget::Queue(queue.clone()),
                    note: None,
                },
            ],
        ),
    );
    // Another queue.
    all.insert("e", start("e", Some(other), ms(15), false));
    // Held by an agent, and one closed.
    all.insert(
        "f",
        after_at(
            &start("f", Some(queue), ms(12), false),
            ms(12),
            [Input::OfferTo(agent.clone()), Input::Accept(agent.clone())],
        ),
    );
    all.insert(
        "g",
        after_at(
            &start("g", Some(queue), ms(14), false),
            ms(14),
            [Input::ForceClose {
                supervisor: AgentId::new(format!("{run}-supervisor")),
            }],
        ),
    );
    // Two at one time: the smaller id first.
    all.insert("t1", start("t1", Some(queue), ms(50), false));
    all.insert("t2", start("t2", Some(queue), ms(50), false));
    // Of no queue (stored before queues existed, or started without one).
    all.insert("n", start("n", None, ms(25), false));
    for c in all.values() {
        store
            .commit(&Commit {
                conversation: c.clone(),
                expected_version: None,
                transcript: Vec::new(),
                effects: Vec::new(),
                deadline: None,
                applies: None,
                at: c.created_at(),
                claim: None,
            })
            .await
            .unwrap();
    }
    assert_eq!(all["d"].queued_since(), ms(40));
    assert!(all["g"].is_closed());
    (all, base)
}

async fn waiting_conversations_ahead_are_counted<S: ConversationStore + ?Sized>(store: &S) {
    let run = unique("ahead");
    let queue = QueueId::new(format!("{run}-q"));
    let other = QueueId::new(format!("{run}-other"));
    let (all, base) = queue_places(store, &run, &queue, &other).await;
    let ahead = |queue: Option<&QueueId>, place: QueuePlace| {
        let queue = queue.cloned();
        async move { store.queued_ahead(queue.as_ref(), &place).await.unwrap() }
    };
    let of = |name: &str| QueuePlace::of(&all[name]);
    let q = Some(&queue);
    // Waiting in the queue, in order: a (10 ms), b (20, paused), d (40: transferred back,
    // though started at 1), t1 and t2 (50, by id).
    assert_eq!(ahead(q, of("a")).await, 0, "the first waiting");
    assert_eq!(ahead(q, of("b")).await, 1, "a");
    assert_eq!(
        ahead(q, of("d")).await,
        2,
        "a and b (paused), not c (offered), f (held) or g (closed)"
    );
    assert_eq!(ahead(q, of("t1")).await, 3, "a, b and d");
    assert_eq!(ahead(q, of("t2")).await, 4, "t1 too: same time, smaller id");
    let end = QueuePlace::new(base + Duration::from_secs(1), ConversationId::from(""));
    assert_eq!(
        ahead(q, end.clone()).await,
        5,
        "every one waiting in the queue"
    );
    assert_eq!(
        ahead(q, QueuePlace::new(base, ConversationId::from(""))).await,
        0
    );
    assert_eq!(
        ahead(Some(&other), end.clone()).await,
        1,
        "another queue's are its own"
    );
    // Of no queue: only n in the run's own times (other runs' and checks' are elsewhere).
    let before = ahead(None, QueuePlace::new(base, ConversationId::from(""))).await;
    assert_eq!(
        ahead(None, of("n")).await,
        before,
        "n is not ahead of itself"
    );
    assert_eq!(ahead(None, end).await, before + 1, "n, of no queue");
}

async fn waiting_conversations_are_read_in_pages<S: ConversationStore + ?Sized>(store: &S) {
    let run = unique("pages");
    let queue = QueueId::new(format!("{run}-q"));
    let other = QueueId::new(format!("{run}-other"));
    let (all, base) = queue_places(store, &run, &queue, &other).await;
    let id = |name: &str| all[name].id().clone();
    let ids = |page: &[Queued]| -> Vec<ConversationId> {
        for q in page {
            assert_eq!(
                q.place,
                QueuePlace::of(&q.conversation),
                "a conversation's place is its own"
            );
        }
        page.iter().map(|s| s.conversation.id().clone()).collect()
    };
    let page = |after: Option<QueuePlace>, limit: usize| async move {
        store
            .list_queued_after(after.as_ref(), limit)
            .await
            .unwrap()
    };
    let start = QueuePlace::new(base, ConversationId::from(""));
    // Every queue's and none's, paused ones too, in the order of places: a (10 ms), e (15,
    // another queue), b (20, paused), n (25, of no queue), d (40, transferred back though
    // started at 1), t1 and t2 (50, by id); not c (offered), f (held) or g (closed).
    let order: Vec<ConversationId> = ["a", "e", "b", "n", "d", "t1", "t2"]
        .into_iter()
        .map(id)
        .collect();
    assert_eq!(ids(&page(Some(start.clone()), 7).await), order);
    // Pages of two, each after the last place of the one before, see each once (the run's
    // own times end at 50 ms; other runs' and checks' are elsewhere).
    let end = base + Duration::from_millis(50);
    let mut walked = Vec::new();
    let mut after = start.clone();
    loop {
        let p = page(Some(after), 2).await;
        assert!(p.len() <= 2, "at most the limit");
        walked.extend(
            p.iter()
                .filter(|s| s.conversation.queued_since() <= end)
                .map(|s| s.conversation.id().clone()),
        );
        match p.last() {
            Some(last) if p.len() == 2 && last.conversation.queued_since() <= end => {
                after = QueuePlace::of(&last.conversation);
            }
            _ => break,
        }
    }
    assert_eq!(walked, order, "pages walked from place to place");
    // After a place: strictly after it, ties by id.
    assert_eq!(
        ids(&page(Some(QueuePlace::of(&all["t1"])), 1).await),
        [id("t2")]
    );
    let at_20 = base + Duration::from_millis(20);
    assert_eq!(
        ids(&page(Some(QueuePlace::new(at_20, ConversationId::from(""))), 1).await),
        [id("b")]
    );
    assert_eq!(
        ids(&page(Some(QueuePlace::new(at_20, id("b"))), 1).await),
        [id("n")]
    );
    // From the first: in order, whatever else the store holds.
    let first = page(None, 50).await;
    assert!(!first.is_empty() && first.len() <= 50);
    let places: Vec<QueuePlace> = first
        .iter()
        .map(|s| QueuePlace::of(&s.conversation))
        .collect();
    // (A store that keeps times to the millisecond orders two places within one by id.)
    let ms = |p: &QueuePlace| {
        p.since
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    assert!(
        places.windows(2).all(|w| ms(&w[0]) < ms(&w[1])
            || (ms(&w[0]) == ms(&w[1]) && (w[0].since != w[1].since || w[0].id < w[1].id))),
        "in the order of places: {places:?}"
    );
    assert!(places[0] <= QueuePlace::of(&all["a"]));
    assert!(
        first
            .iter()
            .all(|s| matches!(s.conversation.state(), State::Open { offer: None })),
        "only conversations waiting with no offer"
    );
}

async fn outbox_keeps_effects_until_completed<S: ConversationStore + ?Sized>(store: &S) {
    let run = unique("outbox");
    let c = new_conversation(&run, &run, "u");
    let effects = vec![
        Effect::RequestOffer {
            exclude: vec![],
            prefer: None,
        },
        Effect::SessionStarted {
            agent: AgentId::from("a"),
        },
    ];
    let (version, pending) = store
        .commit(&create(&c, vec![], effects.clone()))
        .await
        .unwrap();
    let keys: Vec<_> = pending.iter().map(|p| p.key.clone()).collect();
    assert_eq!(
        keys,
        [format!("{run}:{version}:0"), format!("{run}:{version}:1")]
    );
    assert_eq!(
        pending.iter().map(|p| p.effect.clone()).collect::<Vec<_>>(),
        effects
    );
    assert!(
        pending
            .iter()
            .all(|p| p.created_at == t0() && p.attempts == 0)
    );
    // Listed as pending (a read), but claimed by their committer for the default lease:
    // another worker is not handed them.
    let listed = store.pending(10_000).await.unwrap();
    assert!(keys.iter().all(|k| listed.iter().any(|p| &p.key == k)));
    let other = store
        .claim_effects(&lease("other", 1, 120), at(1), 10_000)
        .await
        .unwrap();
    assert!(
        other.iter().all(|p| !keys.contains(&p.key)),
        "fresh effects are claimed by their committer"
    );
    for key in &keys {
        store.complete(key).await.unwrap();
    }
    let left = store.pending(10_000).await.unwrap();
    assert!(
        left.iter().all(|p| !keys.contains(&p.key)),
        "completed effects are gone"
    );
    // Once their lease lapses, nothing completed is handed out again.
    let later = store
        .claim_effects(&lease("other", 500, 1000), at(500), 10_000)
        .await
        .unwrap();
    assert!(later.iter().all(|p| !keys.contains(&p.key)));
}

#[allow(clippy::too_many_lines)] // one scenario, step by step
async fn outbox_claims_retries_and_failures<S: ConversationStore + ?Sized>(store: &S) {
    let run = unique("claims");
    let c = new_conversation(&run, &run, "u");
    let effects = vec![
        Effect::SessionStarted {
            agent: AgentId::from("a"),
        },
        Effect::SessionReleased {
            agent: AgentId::from("a"),
        },
    ];
    let (_, pending) = store.commit(&create(&c, vec![], effects)).await.unwrap();
    let (k0, k1) = (pending[0].key.clone(), pending[1].key.clone());
    let ours = |batch: &[PendingEffect]| {
        let mut v: Vec<_> = batch
            .iter()
            .filter(|p| p.key == k0 || p.key == k1)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    };
    // The committer restarts and takes back its claims at once: handed out as interrupted.
    assert!(store.drop_claims("committer").await.unwrap() >= 2);
    let claimed = ours(
        &store
            .claim_effects(&lease("w2", 1, 61), at(1), 10_000)
            .await
            .unwrap(),
    );
    assert_eq!(claimed.len(), 2, "{claimed:?}");
    assert!(claimed.iter().all(|p| p.interrupted && !p.unconfirmed));
    // Held by w2 until t0+61: nobody else gets them.
    let none = store
        .claim_effects(&lease("w3", 2, 100), at(2), 10_000)
        .await
        .unwrap();
    assert!(ours(&none).is_empty());
    // Only the holder reschedules or fails.
    let retry = Retry {
        error: "503 from Graph".into(),
        at: at(100),
        counts: true,
        unconfirmed: true,
    };
    assert_eq!(store.reschedule(&k0, "w3", &retry).await.unwrap(), None);
    assert!(!store.fail_effect(&k0, "w3", "no", &[]).await.unwrap());
    assert_eq!(store.reschedule(&k0, "w2", &retry).await.unwrap(), Some(1));
    // w2 renews its claim on k1 past the original lease (another owner's renewal is void;
    // the rescheduled k0 is no longer w2's).
    let renewed = store
        .renew_claims(&lease("w2", 50, 300), &[k0.clone(), k1.clone()])
        .await
        .unwrap();
    assert_eq!(renewed, std::slice::from_ref(&k1));
    let foreign = store
        .renew_claims(&lease("w9", 50, 9_000), std::slice::from_ref(&k1))
        .await
        .unwrap();
    assert!(foreign.is_empty());
    // Not due before t0+100, whoever asks, even with its claim released.
    let early = store
        .claim_effects(&lease("w3", 99, 200), at(99), 10_000)
        .await
        .unwrap();
    assert!(ours(&early).is_empty(), "{early:?}");
    let due = ours(
        &store
            .claim_effects(&lease("w3", 150, 200), at(150), 10_000)
            .await
            .unwrap(),
    );
    assert_eq!(due.len(), 1, "only the rescheduled one: {due:?}");
    assert_eq!(due[0].key, k0);
    assert_eq!(due[0].attempts, 1);
    assert!(due[0].unconfirmed && !due[0].interrupted);
    assert_eq!(due[0].last_error.as_deref(), Some("503 from Graph"));
    // A retry that does not count keeps the attempts.
    let parked = Retry {
        counts: false,
        unconfirmed: false,
        at: at(160),
        error: "page needs attention".into(),
    };
    assert_eq!(store.reschedule(&k0, "w3", &parked).await.unwrap(), Some(1));
    let again = ours(
        &store
            .claim_effects(&lease("w3", 170, 250), at(170), 10_000)
            .await
            .unwrap(),
    );
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    // Failed by its holder, with a transcript line, in one step; it is kept, not pending.
    let before = store.outbox_stats().await.unwrap();
    let notice = TranscriptLine {
        at: at(170),
        author: Author::System,
        body: LineBody::Notice("Not delivered: gone".into()),
        mid: None,
        reply_to: None,
        sent_at: None,
    };
    assert!(
        store
            .fail_effect(&k0, "w3", "gone", std::slice::from_ref(&notice))
            .await
            .unwrap()
    );
    assert!(
        !store
            .fail_effect(&k0, "w3", "twice", std::slice::from_ref(&notice))
            .await
            .unwrap()
    );
    let after = store.outbox_stats().await.unwrap();
    assert_eq!(after.failed, before.failed + 1);
    assert_eq!(after.pending, before.pending - 1);
    let lines = store.transcript(c.id()).await.unwrap();
    assert_eq!(
        lines.iter().filter(|l| **l == notice).count(),
        1,
        "{lines:?}"
    );
    // k1's renewed claim lapses at t0+300: then it is handed out again, interrupted.
    let held = store
        .claim_effects(&lease("w4", 299, 400), at(299), 10_000)
        .await
        .unwrap();
    assert!(ours(&held).is_empty());
    // A renewal after the claim lapsed is refused: the effect may be another's by then.
    let late = store
        .renew_claims(&lease("w2", 300, 900), std::slice::from_ref(&k1))
        .await
        .unwrap();
    assert!(late.is_empty(), "a lapsed claim is not renewed");
    let lapsed = ours(
        &store
            .claim_effects(&lease("w4", 300, 400), at(300), 10_000)
            .await
            .unwrap(),
    );
    assert_eq!(lapsed.len(), 1);
    assert_eq!(lapsed[0].key, k1);
    assert!(lapsed[0].interrupted);
    store.complete(&k1).await.unwrap();
    let left = store.pending(10_000).await.unwrap();
    assert!(left.iter().all(|p| p.key != k0 && p.key != k1));
    assert!(store.outbox_stats().await.unwrap().pending <= after.pending);
}

async fn batches_load_and_complete_together<S: ConversationStore + ?Sized>(store: &S) {
    let run = unique("batch");
    let (a, b) = (format!("{run}-a"), format!("{run}-b"));
    let effect = || Effect::SessionStarted {
        agent: AgentId::from("a"),
    };
    let mut keys = Vec::new();
    for id in [&a, &b] {
        let c = new_conversation(id, &run, id);
        let (_, pending) = store
            .commit(&create(&c, vec![], vec![effect(), effect()]))
            .await
            .unwrap();
        keys.extend(pending.into_iter().map(|p| p.key));
    }
    let mut ids = vec![
        ConversationId::from(a.as_str()),
        ConversationId::from(format!("{run}-missing").as_str()),
        ConversationId::from(b.as_str()),
    ];
    let mut loaded: Vec<String> = store
        .load_all(&ids)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.conversation.id().as_str().to_owned())
        .collect();
    loaded.sort();
    assert_eq!(loaded, [a.clone(), b.clone()], "the ones that exist");
    ids.clear();
    assert!(store.load_all(&ids).await.unwrap().is_empty());
    // Three of four marked delivered in one call; the fourth stays pending.
    store.complete_all(&keys[..3]).await.unwrap();
    let left: Vec<String> = store
        .pending(10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.key)
        .filter(|k| keys.contains(k))
        .collect();
    assert_eq!(left, [keys[3].clone()]);
    store.complete_all(&[]).await.unwrap();
    store.complete_all(&keys).await.unwrap();
    assert!(
        store
            .pending(10_000)
            .await
            .unwrap()
            .iter()
            .all(|p| !keys.contains(&p.key))
    );
}

async fn concurrent_claims_never_share<S: ConversationStore + ?Sized + 'static>(store: Arc<S>) {
    let run = unique("share");
    let c = new_conversation(&run, &run, "u");
    let effects: Vec<Effect> = (0..120)
        .map(|i| Effect::SessionStarted {
            agent: AgentId::new(format!("a{i}")),
        })
        .collect();
    let mut commit = create(&c, vec![], effects);
    commit.claim = None;
    let (_, pending) = store.commit(&commit).await.unwrap();
    let ours: std::collections::HashSet<String> = pending.into_iter().map(|p| p.key).collect();
    let mut workers = Vec::new();
    for w in 0..6 {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = store
                    .claim_effects(&lease(&format!("share-w{w}"), 5, 10_000), at(5), 7)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|p| p.key));
            }
        }));
    }
    let mut seen = std::collections::HashMap::new();
    for w in workers {
        for key in w.await.unwrap() {
            *seen.entry(key).or_insert(0) += 1;
        }
    }
    for key in &ours {
        assert_eq!(seen.get(key), Some(&1), "{key} claimed once");
    }
    for key in &ours {
        store.complete(key).await.unwrap();
    }
}

fn inbox_event(key: &str, thread: &str) -> NewInboxEvent {
    NewInboxEvent {
        key: key.to_owned(),
        thread: thread.to_owned(),
        body: format!("{{\"event\":\"{key}\"}}"),
    }
}

async fn inbox_records_once_and_applies_with_the_commit<S: ConversationStore + ?Sized>(store: &S) {
    let run = unique("inbox");
    let thread = format!("{run}-t");
    let keep = Duration::from_secs(48 * 3600);
    let (a, b) = (format!("{run}-a"), format!("{run}-b"));
    let first = store
        .receive(
            &[
                inbox_event(&a, &thread),
                inbox_event(&b, &thread),
                inbox_event(&a, &thread),
            ],
            t0(),
            keep,
        )
        .await
        .unwrap();
    assert_eq!(
        first,
        [true, true, false],
        "a key repeated in one call counts once"
    );
    assert_eq!(
        store
            .receive(&[inbox_event(&a, &thread)], t0(), keep)
            .await
            .unwrap(),
        [false],
        "a redelivery is a duplicate"
    );
    let pending = store.inbox(&thread, 10).await.unwrap();
    assert_eq!(
        pending.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
        [a.as_str(), b.as_str()],
        "in order of receipt"
    );
    assert!(pending[0].seq < pending[1].seq);
    assert_eq!(pending[0].body, format!("{{\"event\":\"{a}\"}}"));
    assert_eq!(store.inbox(&thread, 1).await.unwrap().len(), 1, "limit");
    // A commit that applies `a` marks it applied, in the same step.
    let c = new_conversation(&run, &run, "u");
    let mut commit = create(&c, vec![line("from a")], vec![]);
    commit.applies = Some(pending[0].seq);
    store.commit(&commit).await.unwrap();
    // Applying it again is a conflict, and nothing of that commit is saved.
    let mut again = update(&c, 1, vec![line("from a, twice")]);
    again.applies = Some(pending[0].seq);
    assert!(matches!(
        store.commit(&again).await,
        Err(StoreError::Conflict)
    ));
    let transcript = store.transcript(c.id()).await.unwrap();
    assert_eq!(
        transcript,
        vec![line("from a")],
        "the second application left nothing"
    );
    assert_eq!(store.load(c.id()).await.unwrap().unwrap().version, 1);
    let left = store.inbox(&thread, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].key, b);
    // An event that changes nothing is marked done once.
    assert!(store.inbox_done(left[0].seq).await.unwrap());
    assert!(!store.inbox_done(left[0].seq).await.unwrap());
    assert!(store.inbox(&thread, 10).await.unwrap().is_empty());
    // Applied keys are remembered for `keep` after their receipt, then forgotten.
    assert_eq!(
        store
            .receive(
                &[inbox_event(&a, &thread)],
                t0() + keep - Duration::from_secs(1),
                keep
            )
            .await
            .unwrap(),
        [false]
    );
    assert_eq!(
        store
            .receive(&[inbox_event(&a, &thread)], t0() + keep, keep)
            .await
            .unwrap(),
        [true],
        "received again after `keep`"
    );
    // A pending event is never forgotten, however old.
    assert_eq!(
        store
            .receive(&[inbox_event(&a, &thread)], t0() + keep * 10, keep)
            .await
            .unwrap(),
        [false],
        "still pending: a duplicate"
    );
    assert_eq!(store.inbox(&thread, 10).await.unwrap().len(), 1);
}

async fn concurrent_receives_record_once<S: ConversationStore + ?Sized + 'static>(store: Arc<S>) {
    let run = unique("race");
    let keep = Duration::from_secs(3600);
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (store, run) = (store.clone(), run.clone());
        tasks.push(tokio::spawn(async move {
            // Every call carries the shared key and one of its own.
            let events = [
                inbox_event(&format!("{run}-shared"), &run),
                inbox_event(&format!("{run}-{i}"), &run),
            ];
            store.receive(&events, t0(), keep).await.unwrap()
        }));
    }
    let mut shared = 0;
    for t in tasks {
        let fresh = t.await.unwrap();
        shared += usize::from(fresh[0]);
        assert!(fresh[1], "each call's own key is new");
    }
    assert_eq!(shared, 1, "exactly one call records the shared key");
    assert_eq!(store.inbox(&run, 100).await.unwrap().len(), 13);
}

/// `n` bodies named after `run` recorded at once.
async fn record_at_once<S: ConversationStore + ?Sized + 'static>(
    store: &Arc<S>,
    run: &str,
    n: usize,
) {
    let mut tasks = Vec::new();
    for i in 0..n {
        let (store, body) = (store.clone(), format!("{run}-c{i}"));
        tasks.push(tokio::spawn(async move {
            store
                .record_webhook(body.as_bytes(), t0() + Duration::from_secs(20))
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Two unpacking body `seq` at once: its event is recorded once.
async fn unpack_at_once<S: ConversationStore + ?Sized + 'static>(
    store: &Arc<S>,
    run: &str,
    thread: &str,
    seq: u64,
) {
    let keep = Duration::from_secs(3600);
    // Each with an event of its own: a second unpacker that recorded anything would show.
    let racing: Vec<_> = (0..2)
        .map(|i| {
            let (store, key, thread) = (store.clone(), format!("{run}-race{i}"), thread.to_owned());
            tokio::spawn(async move {
                store
                    .unpack_webhook(seq, &[inbox_event(&key, &thread)], t0(), keep)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut recorded = 0;
    for r in racing {
        recorded += r.await.unwrap().iter().filter(|n| **n).count();
    }
    assert_eq!(
        recorded, 1,
        "of two unpacking one body at once, one records its event"
    );
}

/// Places are never given again, even once every body before is forgotten.
async fn places_are_never_given_again<S: ConversationStore + ?Sized>(
    store: &S,
    run: &str,
    newest: u64,
) {
    let body = format!("{run}-after");
    store.record_webhook(body.as_bytes(), t0()).await.unwrap();
    let again: Vec<_> = store
        .webhooks(0, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .filter(|w| w.body == body.as_bytes())
        .collect();
    assert_eq!(again.len(), 1);
    assert!(
        again[0].seq > newest,
        "a new body's place is after every earlier one"
    );
    store
        .unpack_webhook(again[0].seq, &[], t0(), Duration::from_secs(3600))
        .await
        .unwrap();
}

async fn webhooks_are_kept_until_unpacked<S: ConversationStore + ?Sized + 'static>(store: Arc<S>) {
    let run = unique("webhooks");
    let keep = Duration::from_secs(3600);
    // Other checks' and hosts' rows may share the table: only this run's are looked at.
    let mine = |all: Vec<crate::store::RecordedWebhook>| -> Vec<crate::store::RecordedWebhook> {
        all.into_iter()
            .filter(|w| w.body.starts_with(run.as_bytes()))
            .collect()
    };
    // Bytes as they came, not only UTF-8.
    let first: Vec<u8> = [run.as_bytes(), b"-1 \xff\x00 {}"].concat();
    let second: Vec<u8> = [run.as_bytes(), b"-2"].concat();
    store.record_webhook(&first, t0()).await.unwrap();
    store
        .record_webhook(&second, t0() + Duration::from_secs(10))
        .await
        .unwrap();
    record_at_once(&store, &run, 8).await;
    let all = mine(store.webhooks(0, usize::MAX).await.unwrap());
    assert_eq!(all.len(), 10, "every body recorded, also at once");
    assert_eq!(all[0].body.to_vec(), first, "byte for byte, oldest first");
    assert_eq!(all[0].received_at, t0());
    assert_eq!(all[1].body.to_vec(), second);
    assert_eq!(all[1].received_at, t0() + Duration::from_secs(10));
    assert!(
        all.windows(2).all(|w| w[0].seq < w[1].seq),
        "in order of receipt"
    );
    let after_first = mine(store.webhooks(all[0].seq, usize::MAX).await.unwrap());
    assert_eq!(after_first.len(), 9, "after a place: the later ones");
    assert_eq!(after_first[0].seq, all[1].seq);
    assert_eq!(store.webhooks(0, 1).await.unwrap().len(), 1, "limit");
    let thread = format!("{run}-t");
    let (a, b) = (format!("{run}-a"), format!("{run}-b"));
    let fresh = store
        .unpack_webhook(
            all[0].seq,
            &[inbox_event(&a, &thread), inbox_event(&b, &thread)],
            t0(),
            keep,
        )
        .await
        .unwrap();
    assert_eq!(fresh, [true, true]);
    let left = mine(store.webhooks(0, usize::MAX).await.unwrap());
    assert_eq!(left.len(), 9, "the unpacked body is forgotten");
    assert!(left.iter().all(|w| w.seq != all[0].seq));
    let pending = || async {
        store
            .inbox(&thread, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        pending().await,
        [a.clone(), b.clone()],
        "its events are in the inbox, in order"
    );
    // Unpacked again (two instances): nothing is recorded, not even an event new to the
    // inbox, and every event is reported not new.
    let late = format!("{run}-late");
    assert_eq!(
        store
            .unpack_webhook(
                all[0].seq,
                &[inbox_event(&a, &thread), inbox_event(&late, &thread)],
                t0(),
                keep
            )
            .await
            .unwrap(),
        [false, false],
        "a body no longer there records nothing"
    );
    assert_eq!(pending().await, [a.clone(), b.clone()]);
    assert_eq!(
        store
            .unpack_webhook(
                all[1].seq,
                &[
                    inbox_event(&b, &thread),
                    inbox_event(&format!("{run}-c"), &thread)
                ],
                t0(),
                keep,
            )
            .await
            .unwrap(),
        [false, true],
        "an event delivered again in another body is a duplicate"
    );
    unpack_at_once(&store, &run, &thread, all[2].seq).await;
    for w in &all[3..] {
        assert_eq!(
            store.unpack_webhook(w.seq, &[], t0(), keep).await.unwrap(),
            Vec::<bool>::new()
        );
    }
    assert!(mine(store.webhooks(0, usize::MAX).await.unwrap()).is_empty());
    places_are_never_given_again(&*store, &run, all.last().map_or(0, |w| w.seq)).await;
}

async fn inbox_threads_oldest_first<S: ConversationStore + ?Sized>(store: &S) {
    let run = unique("threads");
    let keep = Duration::from_secs(3600);
    let (x, y) = (format!("{run}-x"), format!("{run}-y"));
    store
        .receive(&[inbox_event(&format!("{run}-1"), &y)], t0(), keep)
        .await
        .unwrap();
    store
        .receive(
            &[inbox_event(&format!("{run}-2"), &x)],
            t0() + Duration::from_secs(10),
            keep,
        )
        .await
        .unwrap();
    let mine = |threads: Vec<String>| -> Vec<String> {
        threads
            .into_iter()
            .filter(|t| t.starts_with(&run))
            .collect()
    };
    assert_eq!(
        mine(store.inbox_threads(t0(), 10_000).await.unwrap()),
        vec![y.clone()],
        "only what was received by then"
    );
    assert_eq!(
        mine(
            store
                .inbox_threads(t0() + Duration::from_secs(10), 10_000)
                .await
                .unwrap()
        ),
        vec![y, x],
        "oldest first"
    );
}

async fn inbox_failures_back_off_and_can_be_set_aside<S: ConversationStore + ?Sized>(store: &S) {
    let run = unique("poison");
    let keep = Duration::from_secs(3600);
    let (t, other) = (format!("{run}-t"), format!("{run}-o"));
    // One key in two threads: two events.
    assert_eq!(
        store
            .receive(
                &[inbox_event("k", &t), inbox_event("k", &other)],
                t0(),
                keep
            )
            .await
            .unwrap(),
        [true, true],
        "an event is named by its thread and key"
    );
    let head = store.inbox(&t, 10).await.unwrap().remove(0);
    assert_eq!((head.key.as_str(), head.attempts), ("k", 0));
    let later = t0() + Duration::from_secs(60);
    assert_eq!(
        store.inbox_failed(head.seq, "boom", later).await.unwrap(),
        1
    );
    assert_eq!(
        store.inbox_failed(head.seq, "boom", later).await.unwrap(),
        2
    );
    assert_eq!(store.inbox(&t, 10).await.unwrap()[0].attempts, 2);
    let mine = |threads: Vec<String>| -> Vec<String> {
        threads
            .into_iter()
            .filter(|x| x.starts_with(&run))
            .collect()
    };
    assert_eq!(
        mine(store.inbox_threads(t0(), 10_000).await.unwrap()),
        vec![other.clone()],
        "a thread waiting to be tried again is left out"
    );
    assert_eq!(
        mine(store.inbox_threads(later, 10_000).await.unwrap()),
        vec![t.clone(), other.clone()]
    );
    // Set aside: no longer pending, still a duplicate, never purged.
    assert!(store.inbox_dead(head.seq, "boom").await.unwrap());
    assert!(!store.inbox_dead(head.seq, "boom").await.unwrap());
    assert_eq!(
        store.inbox_failed(head.seq, "boom", later).await.unwrap(),
        0
    );
    assert!(store.inbox(&t, 10).await.unwrap().is_empty());
    store.purge_inbox(t0() + keep * 10).await.unwrap();
    assert_eq!(
        store
            .receive(&[inbox_event("k", &t)], t0() + keep * 10, keep)
            .await
            .unwrap(),
        [false]
    );
    // Applied events are forgotten by the purge; pending ones are not.
    let o = store.inbox(&other, 10).await.unwrap().remove(0);
    assert!(store.inbox_done(o.seq).await.unwrap());
    store
        .receive(&[inbox_event("p", &other)], t0(), keep)
        .await
        .unwrap();
    assert!(
        store
            .purge_inbox(t0() + Duration::from_secs(1))
            .await
            .unwrap()
            >= 1
    );
    assert_eq!(
        store
            .receive(
                &[inbox_event("k", &other), inbox_event("p", &other)],
                t0() + Duration::from_secs(2),
                keep
            )
            .await
            .unwrap(),
        [true, false],
        "the applied one is received again, the pending one is still a duplicate"
    );
}

async fn media_round_trip(media: &dyn MediaStore) {
    let bytes = bytes::Bytes::from(unique("file-").into_bytes());
    let one = ConversationId::from(unique("media-a-").as_str());
    let other = ConversationId::from(unique("media-b-").as_str());
    let key = media
        .put(&one, bytes.clone(), Some("text/plain"))
        .await
        .unwrap();
    assert_eq!(
        media
            .put(&one, bytes.clone(), Some("text/plain"))
            .await
            .unwrap(),
        key,
        "content-addressed within a conversation"
    );
    let others = media
        .put(&other, bytes.clone(), Some("text/plain"))
        .await
        .unwrap();
    assert_ne!(others, key, "a key is never shared by two conversations");
    let (got, content_type) = media.get(&key).await.unwrap().unwrap();
    assert_eq!(
        (got, content_type.as_deref()),
        (bytes.clone(), Some("text/plain"))
    );
    assert!(media.get(&"0".repeat(64)).await.unwrap().is_none());
    // A store that deletes (the default keeps the bytes and says `false`) deletes once, and
    // only that conversation's file.
    if media.delete(&key).await.unwrap() {
        assert!(media.get(&key).await.unwrap().is_none(), "deleted");
        assert!(!media.delete(&key).await.unwrap(), "deleted once");
        assert_eq!(
            media.get(&others).await.unwrap().map(|(b, _)| b),
            Some(bytes.clone()),
            "another conversation's copy stays"
        );
        assert_eq!(
            media.put(&one, bytes.clone(), None).await.unwrap(),
            key,
            "kept again"
        );
    }
    assert!(!media.delete(&"0".repeat(64)).await.unwrap());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docs_state_every_contract() {
        let source = include_str!("conformance.rs");
        for (name, contract) in CHECKS {
            assert!(
                source.contains(&format!("//! | `{name}` | {contract} |")),
                "the module docs' table lacks {name}, or states another contract"
            );
            assert!(
                source.contains(&format!("        {name}(")),
                "{name} is not run"
            );
        }
    }

    /// A media store that keys every file alike: the panic names the broken contract.
    #[tokio::test]
    async fn a_broken_contract_is_named() {
        #[derive(Debug)]
        struct Forgetful;
        #[async_trait::async_trait]
        impl MediaStore for Forgetful {
            async fn put(
                &self,
                _: &ConversationId,
                _: bytes::Bytes,
                _: Option<&str>,
            ) -> Result<String, StoreError> {
                Ok(unique("k"))
            }
            async fn get(
                &self,
                _: &str,
            ) -> Result<Option<(bytes::Bytes, Option<String>)>, StoreError> {
                Ok(None)
            }
        }
        let outcome =
            tokio::spawn(async { check("media_round_trip", media_round_trip(&Forgetful)).await })
                .await
                .unwrap_err()
                .into_panic();
        let message = panic_message(&*outcome);
        assert!(
            message.starts_with("store conformance: media_round_trip failed")
                && message.contains(CHECKS[CHECKS.len() - 1].1)
                && message.contains("content-addressed"),
            "{message}"
        );
    }
}
