//! The customer's locale through the webhook: the host's hook gives it when a conversation
//! starts; it routes (the locale rule, the host's own rule) and chooses the automated
//! messages' texts, with a fallback to the language and then to the default; a hook that
//! fails or does not answer starts the conversation without one, and loses nothing.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use messenger_channel::agents::{InMemoryRouter, Notification, Presence, RecordingNotifier};
use messenger_channel::conversation::{AutomatedTrigger, Conversation, LineBody};
use messenger_channel::engine::{
    CustomerLocale, DEFAULT_LOCALE_TIMEOUT, Engine, EngineBuilder, LocaleLookupError,
};
use messenger_channel::ids::{AgentId, PageId, QueueId, UserId};
use messenger_channel::locale::Locale;
use messenger_channel::routing::{AutomatedMessages, Condition, Queue, Routing, RoutingRules};
use messenger_channel::store::{ConversationStore, InMemoryStore};
use messenger_channel::testing::{FakeSend, t0};
use messenger_channel::webhook::Webhook;
use support::channel::{PAGE, secret, signed, webhook};

fn secs(n: u64) -> SystemTime {
    t0() + Duration::from_secs(n)
}

fn q(name: &str) -> QueueId {
    QueueId::from(name)
}

fn l(locale: &str) -> Locale {
    Locale::new(locale).unwrap()
}

/// What the host's CRM says: `fr-*` customers write in `fr_CA`, `es-*` in `es_MX`, `pt-*` in
/// `pt_BR`; `fail-*` make the lookup fail; `hang-*` make it never answer; the others are
/// unknown. Counts the questions.
#[derive(Default)]
struct Crm {
    asked: AtomicUsize,
}

#[async_trait::async_trait]
impl CustomerLocale for Crm {
    async fn locale(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
    ) -> Result<Option<Locale>, LocaleLookupError> {
        assert_eq!(page.as_str(), PAGE);
        self.asked.fetch_add(1, Ordering::SeqCst);
        let c = customer.as_str();
        if c.starts_with("fail-") {
            return Err("the CRM answered 503".into());
        }
        if c.starts_with("hang-") {
            std::future::pending::<()>().await;
        }
        Ok(match c.split('-').next() {
            Some("fr") => Some(l("fr-ca")),
            Some("es") => Some(l("es_MX")),
            Some("pt") => Some(l("pt_BR")),
            _ => None,
        })
    }
}

/// English by default, French for `fr` (greeting, agent joined, no agent), Canadian French
/// for `fr_CA` (greeting only), Spanish for `es_ES` only (not `es_MX`).
fn messages() -> AutomatedMessages {
    use AutomatedTrigger::{AgentJoined, Greeting, NoAgentAvailable, Survey};
    AutomatedMessages::default()
        .set(Greeting, "Hello!")
        .set(AgentJoined, "{AgentName} joined.")
        .set(NoAgentAvailable, "You are number {QueuePosition}.")
        .set(Survey, "Survey: https://example.com/s")
        .locale(
            l("fr"),
            AutomatedMessages::default()
                .set(Greeting, "Bonjour !")
                .set(AgentJoined, "{AgentName} s'est joint à la conversation.")
                .set(NoAgentAvailable, "Vous êtes numéro {QueuePosition}."),
        )
        .locale(
            l("fr_CA"),
            AutomatedMessages::default().set(Greeting, "Bonjour, bienvenue !"),
        )
        .locale(
            l("es_ES"),
            AutomatedMessages::default().set(Greeting, "¡Hola!"),
        )
}

/// Queues: `general` (the fallback), `french` (the locale rule `fr`), `portuguese` (the
/// host's rule, on the locale it was given); every queue says [`messages`].
fn routing() -> Routing {
    let rules = RoutingRules::new(q("general"))
        .host(|facts: &messenger_channel::routing::StartFacts<'_>| {
            (facts.locale == Some("pt_BR")).then(|| q("portuguese"))
        })
        .when(Condition::Locale("fr".into()), q("french"));
    let mut routing = Routing::new(Queue::push(q("general")).messages(messages()));
    for name in ["french", "portuguese"] {
        routing = routing.add_queue(Queue::push(q(name)).messages(messages()));
    }
    routing.rules(rules)
}

struct Desk {
    engine: Engine,
    store: Arc<dyn ConversationStore>,
    send: Arc<FakeSend>,
    notifier: Arc<RecordingNotifier>,
    crm: Arc<Crm>,
}

fn desk_with(
    store: Arc<dyn ConversationStore>,
    agents: &[&str],
    configure: impl FnOnce(EngineBuilder) -> EngineBuilder,
) -> Desk {
    let router = Arc::new(InMemoryRouter::new());
    for a in agents {
        router.set_presence(&AgentId::from(*a), Presence::Available);
    }
    let send = Arc::new(FakeSend::new());
    let notifier = Arc::new(RecordingNotifier::new());
    let crm = Arc::new(Crm::default());
    let engine = configure(
        Engine::builder(Webhook::new(&secret()), send.clone())
            .store(store.clone())
            .router(router)
            .notifier(notifier.clone())
            .routing(routing())
            .customer_locale(crm.clone()),
    )
    .build();
    Desk {
        engine,
        store,
        send,
        notifier,
        crm,
    }
}

fn desk(agents: &[&str]) -> Desk {
    desk_with(Arc::new(InMemoryStore::new()), agents, |b| b)
}

impl Desk {
    async fn write(&self, customer: &str, mid: &str, text: &str, at: SystemTime) {
        let (h, b) = signed(webhook().message(customer, mid, text, at));
        let report = self.engine.handle_webhook(&h, &b, at).await.unwrap();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
    }

    async fn open(&self, customer: &str) -> Conversation {
        self.store
            .find_open(&PageId::from(PAGE), &UserId::new(customer.to_owned()))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no open conversation for {customer}"))
            .conversation
    }

    /// The texts sent to `customer`, in order.
    fn sent_to(&self, customer: &str) -> Vec<String> {
        self.send
            .sent()
            .into_iter()
            .filter(|s| s.body["recipient"]["id"] == customer)
            .filter_map(|s| s.body["message"]["text"].as_str().map(str::to_owned))
            .collect()
    }

    /// The customer's messages recorded in their conversation.
    async fn customer_texts(&self, c: &Conversation) -> Vec<String> {
        self.store
            .transcript(c.id())
            .await
            .unwrap()
            .into_iter()
            .filter_map(|line| match line.body {
                LineBody::Text(t)
                    if line.author == messenger_channel::conversation::Author::Customer =>
                {
                    Some(t)
                }
                _ => None,
            })
            .collect()
    }
}

#[tokio::test]
async fn the_hosts_locale_routes_new_conversations() {
    let d = desk(&[]);
    d.write("fr-1", "m1", "allo", secs(1)).await;
    d.write("pt-1", "m2", "olá", secs(2)).await;
    d.write("es-1", "m3", "hola", secs(3)).await;
    d.write("anon-1", "m4", "hi", secs(4)).await;

    let queue = |c: &Conversation| c.queue().unwrap().as_str().to_owned();
    let fr = d.open("fr-1").await;
    assert_eq!(queue(&fr), "french", "the locale rule `fr` holds for fr_CA");
    assert_eq!(fr.customer_locale(), Some(&l("fr_CA")));
    let pt = d.open("pt-1").await;
    assert_eq!(queue(&pt), "portuguese", "the host's rule sees the locale");
    let es = d.open("es-1").await;
    assert_eq!(queue(&es), "general");
    assert_eq!(es.customer_locale(), Some(&l("es_MX")));
    let anon = d.open("anon-1").await;
    assert_eq!(queue(&anon), "general");
    assert_eq!(anon.customer_locale(), None);

    // Asked once per conversation: a later message does not ask again, nor reclassify.
    assert_eq!(d.crm.asked.load(Ordering::SeqCst), 4);
    d.write("fr-1", "m5", "encore moi", secs(5)).await;
    assert_eq!(d.crm.asked.load(Ordering::SeqCst), 4);
    assert_eq!(queue(&d.open("fr-1").await), "french");
}

#[tokio::test]
async fn automated_messages_speak_the_customers_locale() {
    let d = desk(&["ada"]);
    // fr_CA: its own greeting; the agent joined from `fr`; the survey from the default.
    d.write("fr-1", "m1", "allo", secs(1)).await;
    let c = d.open("fr-1").await;
    let ada = AgentId::from("ada");
    assert!(d.notifier.take().iter().any(|n| matches!(
        n,
        Notification::Offer { offer, .. } if offer.agent == ada
    )));
    d.engine.accept(c.id(), &ada, secs(2)).await.unwrap();
    d.engine.end(c.id(), &ada, secs(3)).await.unwrap();
    d.engine.close_session(c.id(), &ada, secs(4)).await.unwrap();
    assert_eq!(
        d.sent_to("fr-1"),
        [
            "Bonjour, bienvenue !",
            "ada s'est joint à la conversation.",
            "Survey: https://example.com/s"
        ]
    );

    // es_MX: no table for it nor for `es` (only es_ES): the default texts.
    d.write("es-1", "m2", "hola", secs(5)).await;
    // Unknown locale: the default texts.
    d.write("anon-1", "m3", "hi", secs(6)).await;
    assert_eq!(d.sent_to("es-1")[0], "Hello!");
    assert_eq!(d.sent_to("anon-1")[0], "Hello!");
}

#[tokio::test]
async fn no_agent_available_is_told_in_the_customers_language() {
    let d = desk(&[]);
    d.write("anon-1", "m1", "hi", secs(1)).await;
    d.write("fr-1", "m2", "allo", secs(2)).await;
    assert_eq!(d.sent_to("anon-1"), ["Hello!", "You are number 1."]);
    // In the `french` queue, where fr-1 is first.
    assert_eq!(
        d.sent_to("fr-1"),
        ["Bonjour, bienvenue !", "Vous êtes numéro 1."]
    );
}

#[tokio::test]
async fn a_failing_lookup_starts_the_conversation_without_a_locale_and_loses_nothing() {
    let d = desk(&[]);
    d.write("fail-1", "m1", "bonjour", secs(1)).await;
    let c = d.open("fail-1").await;
    assert_eq!(c.customer_locale(), None);
    assert_eq!(c.queue().unwrap().as_str(), "general", "the fallback");
    assert_eq!(d.customer_texts(&c).await, ["bonjour"]);
    assert_eq!(d.sent_to("fail-1")[0], "Hello!");
}

/// The default limit (2 s): a hook that never answers delays the conversation by that much,
/// then it starts without a locale.
#[tokio::test]
async fn a_lookup_that_never_answers_gives_up_at_the_default_limit() {
    let d = desk(&[]);
    let started = std::time::Instant::now();
    d.write("hang-1", "m1", "hello?", secs(1)).await;
    let waited = started.elapsed();
    assert!(waited >= DEFAULT_LOCALE_TIMEOUT, "{waited:?}");
    let c = d.open("hang-1").await;
    assert_eq!(c.customer_locale(), None);
    assert_eq!(d.customer_texts(&c).await, ["hello?"]);
}

/// A shorter limit (here 20 ms, so that the test does not wait 2 s per customer) is the
/// host's to choose: several hanging lookups each give up at it, and later customers are not
/// held behind them.
#[tokio::test]
async fn a_lookup_limit_the_host_sets_is_kept() {
    let d = desk_with(Arc::new(InMemoryStore::new()), &[], |b| {
        b.customer_locale_timeout(Duration::from_millis(20))
    });
    for (i, customer) in ["hang-1", "hang-2", "fr-1"].into_iter().enumerate() {
        d.write(customer, &format!("m{i}"), "hi", secs(1)).await;
    }
    assert_eq!(d.open("hang-1").await.customer_locale(), None);
    assert_eq!(d.open("hang-2").await.customer_locale(), None);
    assert_eq!(d.open("fr-1").await.customer_locale(), Some(&l("fr_CA")));
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn the_locale_is_kept_with_the_conversation_on_sqlite() {
    use messenger_channel::store::SqliteStore;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("channel.db");
    {
        let store = Arc::new(SqliteStore::open(&path).await.unwrap());
        let d = desk_with(store, &[], |b| b);
        d.write("fr-1", "m1", "allo", secs(1)).await;
    }
    // Another process reads it back: the locale, and the texts it chooses, are kept.
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let d = desk_with(store, &["ada"], |b| b);
    let c = d.open("fr-1").await;
    assert_eq!(c.customer_locale(), Some(&l("fr_CA")));
    let sam = messenger_channel::engine::Supervisor::new(AgentId::from("sam"));
    d.engine
        .assign(&sam, c.id(), &AgentId::from("ada"), secs(2))
        .await
        .unwrap();
    assert_eq!(
        d.sent_to("fr-1").last().map(String::as_str),
        Some("ada s'est joint à la conversation."),
        "the second process chose the French text from the kept locale"
    );
    assert_eq!(d.crm.asked.load(Ordering::SeqCst), 0, "not asked again");
}
