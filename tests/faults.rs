//! Fault injection: the store fails, or hangs, at the k-th call, for every k over a scripted
//! scenario (new conversations, redeliveries, attachments, accept, an agent's send, ticks). A
//! driver acts as Meta: it delivers again every body that was not answered with success. Once
//! the faults stop, every transcript equals the fault-free run's: no customer message lost, no
//! line repeated. Run on memory, SQLite and PostgreSQL.

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use messenger_channel::agents::{InMemoryRouter, Presence, RecordingNotifier};
use messenger_channel::conversation::{
    Author, ConversationConfig, LineBody, State, TranscriptLine,
};
use messenger_channel::engine::{Engine, EngineError};
use messenger_channel::ids::{AgentId, PageId, UserId};
use messenger_channel::send::MediaKind;
use messenger_channel::store::ConversationStore;
use messenger_channel::testing::{FakeSend, t0};
use messenger_channel::webhook::Webhook;
use support::channel::{PAGE, secret, signed, webhook};
use support::faulty_store::{FAULTS, Fault, FaultyStore};

fn at(secs: u64) -> SystemTime {
    t0() + Duration::from_secs(secs)
}

/// The scenario's names, unique per run so that runs can share a database.
struct Names {
    run: String,
}

impl Names {
    fn customer(&self, who: &str) -> String {
        format!("{}{who}", self.run)
    }
    fn mid(&self, m: &str) -> String {
        format!("{}_{m}", self.run)
    }
}

/// How long the driver waits for an answer before it takes the request as lost (as Meta
/// does after about 20 s). Under paused time (the memory runs) this costs nothing; on real
/// databases a hang costs this much real time. Shorter than Meta's wait: the test needs no
/// more, and a slow answer taken for a lost one only makes the driver deliver again, which
/// the channel must absorb anyway.
const ANSWER_WITHIN: Duration = Duration::from_millis(700);

/// Meta: delivers the body until it is acknowledged.
async fn deliver(engine: &Engine, body: &(http::HeaderMap, Vec<u8>), now: SystemTime) {
    for _ in 0..20 {
        if let Ok(Ok(_)) =
            tokio::time::timeout(ANSWER_WITHIN, engine.handle_webhook(&body.0, &body.1, now)).await
        {
            return;
        }
    }
    panic!("a body was never acknowledged");
}

/// What the run left: each customer's transcript.
type Transcripts = Vec<Vec<TranscriptLine>>;

/// Runs the scenario on `store` with the fault, then heals it and lets the channel catch up.
#[allow(clippy::too_many_lines)] // one script, read top to bottom
async fn scenario<S: ConversationStore + 'static>(
    inner: Arc<S>,
    names: &Names,
    at_call: u64,
    fault: Fault,
) -> (u64, Transcripts) {
    let store = Arc::new(FaultyStore::new(inner.clone(), at_call, fault));
    let router = Arc::new(InMemoryRouter::new());
    let alice = AgentId::from("alice");
    router.set_presence(&alice, Presence::Available);
    let send = Arc::new(FakeSend::new());
    let engine = Engine::builder(Webhook::new(&secret()), send.clone())
        .store(store.clone())
        .router(router)
        .notifier(Arc::new(RecordingNotifier::new()))
        .config(ConversationConfig::default())
        .build();
    let (a, b) = (names.customer("1"), names.customer("2"));
    let first = signed(webhook().message(&a, &names.mid("a1"), "hello, A here", at(0)));
    // A new conversation from a body of two entries: a text, and a file the policy accepts.
    deliver(&engine, &first, at(0)).await;
    let second = signed(
        webhook()
            .message(&b, &names.mid("b1"), "hello, B here", at(1))
            .attachment(
                &b,
                &names.mid("b2"),
                MediaKind::File,
                "https://cdn.example/invoice.pdf",
                at(1),
            ),
    );
    deliver(&engine, &second, at(1)).await;
    // Meta delivers the first body again.
    deliver(&engine, &first, at(2)).await;
    deliver(
        &engine,
        &signed(webhook().message(&a, &names.mid("a2"), "are you there?", at(3))),
        at(3),
    )
    .await;
    // Alice accepts A's conversation, as an agent would: again after an error, and after a
    // tick when no offer reached her.
    let page = PageId::from(PAGE);
    let a_id = loop {
        if let Some(s) = inner
            .find_open(&page, &UserId::new(a.clone()))
            .await
            .unwrap()
        {
            break s.conversation.id().clone();
        }
        let _ = tokio::time::timeout(ANSWER_WITHIN, engine.tick(at(4))).await;
    };
    for attempt in 0.. {
        assert!(attempt < 20, "alice could never accept");
        let state = inner.load(&a_id).await.unwrap().unwrap().conversation;
        if state.state()
            == &(State::Active {
                agent: alice.clone(),
            })
        {
            break;
        }
        match tokio::time::timeout(ANSWER_WITHIN, engine.accept(&a_id, &alice, at(4))).await {
            Ok(Ok(())) => break,
            Ok(Err(EngineError::Transition(_))) => {
                let _ = tokio::time::timeout(ANSWER_WITHIN, engine.tick(at(4))).await;
            }
            _ => {}
        }
    }
    // Alice answers; after an error she looks at the transcript before sending again.
    for attempt in 0.. {
        assert!(attempt < 20, "alice could never send");
        let answered = inner
            .transcript(&a_id)
            .await
            .unwrap()
            .iter()
            .any(|l| l.body == LineBody::Text("how can I help?".into()));
        if answered {
            break;
        }
        if let Ok(Ok(_)) = tokio::time::timeout(
            ANSWER_WITHIN,
            engine.send_text(&a_id, &alice, "how can I help?", at(5)),
        )
        .await
        {
            break;
        }
    }
    let _ = tokio::time::timeout(ANSWER_WITHIN, engine.tick(at(6))).await;
    deliver(
        &engine,
        &signed(
            webhook()
                .message(&b, &names.mid("b3"), "still waiting", at(7))
                .message(&a, &names.mid("a3"), "thanks!", at(7)),
        ),
        at(7),
    )
    .await;
    // The faults stop; the sweep applies whatever a fault left in the inbox.
    store.heal();
    let calls = store.calls();
    engine.tick(at(10)).await.unwrap();
    let mut transcripts = Vec::new();
    for customer in [&a, &b] {
        let c = inner
            .find_open(&page, &UserId::new(customer.clone()))
            .await
            .unwrap()
            .expect("the customer's conversation");
        let lines = inner.transcript(c.conversation.id()).await.unwrap();
        transcripts.push(lines.into_iter().map(|l| unname(l, names)).collect());
    }
    (calls, transcripts)
}

/// The line without the run's prefix in its message id. An agent's line gets the platform's
/// id once it is sent, which a fault may put off past the scenario's end (a send whose claim
/// was interrupted waits for its echo first): what is compared is what was written, not when
/// it went out, so an agent's line is compared without it (nor its send time, recorded with
/// the id).
fn unname(mut line: TranscriptLine, names: &Names) -> TranscriptLine {
    if matches!(line.author, Author::Agent(_)) {
        line.sent_at = None;
    }
    line.mid = match line.author {
        Author::Agent(_) => None,
        _ => line
            .mid
            .map(|m| m.replacen(&format!("{}_", names.run), "", 1)),
    };
    line
}

/// The fault-free run, then one run per call and fault.
async fn every_fault<S, F>(mut make: F)
where
    S: ConversationStore + 'static,
    F: AsyncFnMut() -> Arc<S>,
{
    let run = |n: &str| Names {
        run: format!("9{}{n}", std::process::id()),
    };
    let (calls, expected) = scenario(make().await, &run("0"), 0, Fault::FailBefore).await;
    // Sanity: the scenario made what it should.
    let customer_lines = |t: &Vec<TranscriptLine>| {
        t.iter()
            .filter(|l| l.author == Author::Customer)
            .filter_map(|l| l.mid.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(customer_lines(&expected[0]), ["a1", "a2", "a3"]);
    assert_eq!(customer_lines(&expected[1]), ["b1", "b2", "b3"]);
    assert!(
        expected[0]
            .iter()
            .any(|l| l.author == Author::Agent(AgentId::from("alice"))),
        "{:?}",
        expected[0]
    );
    assert!(calls > 20, "the scenario makes {calls} store calls");
    eprintln!("fault-free run: {calls} store calls");
    let mut n = 0;
    for fault in FAULTS {
        for k in 1..=calls {
            n += 1;
            let names = run(&format!("{n}"));
            let (_, got) = scenario(make().await, &names, k, fault).await;
            assert_eq!(
                got, expected,
                "{fault:?} at call {k} of {calls}: the transcripts differ from the fault-free run"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn memory_store_under_every_fault() {
    every_fault(async || Arc::new(messenger_channel::store::InMemoryStore::new())).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_under_every_fault() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    let path = dir.path().to_owned();
    every_fault(async || {
        n += 1;
        Arc::new(
            messenger_channel::store::SqliteStore::open(path.join(format!("run{n}.db")))
                .await
                .unwrap(),
        )
    })
    .await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_under_every_fault() {
    let Some(url) = support::postgres::postgres_url() else {
        return;
    };
    let store = Arc::new(
        messenger_channel::store::PostgresStore::connect(&url)
            .await
            .unwrap(),
    );
    every_fault(async || store.clone()).await;
}
