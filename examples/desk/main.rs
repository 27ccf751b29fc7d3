//! Run with: `cargo run --example desk`
//!
//! The agent desk: one process with the webhook endpoints, a web page for agents (sign in,
//! presence, offers with their countdown, Accept and Reject, the transcript, text and files
//! both ways, End and Close, the conversation list), on embedded defaults (SQLite in a data
//! directory).
//!
//! Without `--real` it runs in simulation mode (the page says so in a banner): a simulated
//! customer page sends correctly signed webhooks to this server (text, a picture, a file, an
//! unsupported file, a redelivered duplicate), and a local fake Graph endpoint receives the
//! agents' sends and shows them to the simulated customer. Simulation has three demo
//! accounts, agents `alice` and `bob` and supervisor `sam`, whose password is printed at
//! start. With `--real` it runs against the real Messenger Platform and needs
//! `PAGE_ACCESS_TOKEN`, `APP_SECRET` and `VERIFY_TOKEN` (it refuses to start without them,
//! naming what is missing); its agents are the accounts of `agents.toml` in the data
//! directory, made with `cargo run --example desk -- add-agent NAME --role agent --capacity
//! 3 --language en` (the password is read from standard input).
//!
//! Who is writing: each customer's name and picture come from the Graph user profile, asked
//! once when their conversation is first offered or listed (never on the webhook's path),
//! kept in the desk's database and asked again after 7 days; a page without the permission
//! shows "Facebook user ·1234" (the last digits of the customer's id). The picture is shown
//! only from an `https` URL (the page's policy allows `https:` images, which run no script),
//! without a referrer; one that fails to load is hidden. The simulated customer is "Dana
//! Reyes", whose picture is on a `.invalid` host (so simulation never reaches Facebook's CDN:
//! the picture is hidden, the name shown); other simulated customers have no profile.
//!
//! The panel shows everything the customer does: reactions on the message they react to,
//! quoted replies, edits (the current text, "edited", the earlier versions on hover), removed
//! messages (kept and marked "removed by the customer", the default), replies from the Page
//! inbox or another app with their author, stickers, links and locations, and on each agent
//! message whether it was sent (✓), delivered (✓✓) or read. Agents react to the customer's
//! messages with the buttons beside them.
//!
//! Safe against the web: sessions in an `HttpOnly`, `SameSite=Strict` cookie, every agent
//! route answers 401 without one, writes come from the desk's own origin as JSON, the Host
//! header must name the desk, files are served as attachments under a sandbox policy, and the
//! page has a strict Content Security Policy (see `web.rs`, `auth.rs`, `media.rs`).
//!
//! Survives reloads and restarts: presence, capacity in use and pending offers live in the
//! store (the SQLite store is the engine's router), so the page shows the same offers (with
//! what is left of their countdown), conversations and presence after a reload or a restart;
//! it says when its event stream is cut, and reconnects by itself. It also shows the queue
//! (who waits, for how long), the agent's closed conversations and the customer's earlier
//! ones, and the page-health banner. It speaks English and Spanish: the account's
//! `language` (`add-agent NAME --language es`), else the browser's `Accept-Language`.
//!
//! Working together: in simulation a first message about buying or prices goes to the Pick
//! queue "Sales", whose open conversations agents see with their wait and pick; the holder of a
//! conversation transfers it to an agent (who gets the transfer notification, with who and the
//! note) or to a queue, or invites an agent to consult (internal notes only); internal notes
//! are marked and never sent. A supervisor sees every queue's waiting and active conversations,
//! watches any conversation live, assigns a waiting one and force-closes any; the supervisor's
//! routes answer 403 to an agent.
//!
//! The files: `main.rs` (wiring: stores, engine, routes), `options.rs` (the command line),
//! `auth.rs` (accounts, sessions, `add-agent`), `web.rs` (Host, Origin, JSON-only writes, JSON
//! errors, the pages' policy), `agent.rs` (the agent's routes), `work.rs` (Pick, transfer,
//! consult, internal notes), `supervise.rs` (the supervisor's routes), `errors.rs` (engine
//! errors in agent words), `i18n.rs` (the desk's words in English and Spanish), `media.rs`
//! (files), `sim.rs` (the simulated customer and Graph API).
//!
//! Options: `--real`; `--port N` (default 8080; 0 picks a free port) or `--agent-bind ADDR`
//! (default `127.0.0.1:8080`) for the agent page; `--webhook-bind ADDR` to serve `/webhook`
//! on a listener of its own (public, say, while the agent page stays on loopback);
//! `--origin URL` (repeatable: the public address of the agent page behind a proxy, such as
//! `https://desk.example.com`) and `--host NAME` (repeatable: another Host header value to
//! answer to); `--data DIR` (default `desk-data`); `--accounts FILE` (default
//! `DIR/agents.toml`); `--policy FILE.toml` (the attachment policy; see
//! `examples/policy.sample.toml`); `--mark-seen on|off` (default on: opening a conversation
//! marks the customer's messages seen, `sender_action` `mark_seen`); `--typing on|off`
//! (default on: the customer sees the typing bubble while the agent types, `typing_on`, at
//! most once every 5 s per conversation); `--offer-timeout SECONDS` (default 120: how long an
//! agent has to accept an offer); `--presence-after-missed-offer PRESENCE` and
//! `--presence-after-rejected-offer PRESENCE` (`busy`, `dnd`, `away`, `offline` or `none`, the
//! default: Omnichannel's presence side effects on an agent who lets an offer lapse or
//! rejects it; the agent's open pages show the new presence at once, with a notice).

mod access;
mod agent;
mod auth;
mod errors;
mod i18n;
mod media;
mod options;
mod sim;
mod supervise;
mod web;
mod work;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::routing::{get, post};
use messenger_channel::agents::{AgentNotifier, Presence};
use messenger_channel::attachment::{AttachmentPolicy, PolicyConfig};
use messenger_channel::axum::WebhookRoutes;
use messenger_channel::conversation::{Conversation, ConversationConfig, Offer, TranscriptLine};
use messenger_channel::engine::{DeliveryConfig, Engine};
use messenger_channel::ids::{AgentId, ConversationId, QueueId};
use messenger_channel::profile::Profiles;
use messenger_channel::routing::{Condition, Queue, Routing, RoutingRules};
use messenger_channel::secret::{AppSecret, PageAccessToken, VerifyToken};
use messenger_channel::send::GraphClient;
use messenger_channel::store::SqliteStore;
use messenger_channel::webhook::Webhook;
use messenger_channel::window::WindowConfig;
use serde_json::json;
use tokio::sync::broadcast;

use crate::agent::{
    act, agent_page, conversation, conversations, desk_info, events, me, presence, send_file,
    sign_in, sign_out,
};
use crate::options::{credentials, fail, options};
use crate::sim::{
    SIM_SECRET, SIM_VERIFY, Simulation, customer_page, fake_graph_messages, fake_graph_profile,
    sim_canary, sim_file, sim_graph, sim_inbox, sim_outbox_file, sim_send,
};

/// The largest file an agent uploads (Messenger takes 25 MB; the attachment policy may say
/// less).
const FILE_MAX_BYTES: usize = 26 * 1024 * 1024;

/// The simulation's Pick queue: a customer whose first message speaks of buying or prices
/// waits there until an agent picks the conversation; every other one is offered (Push).
const SIM_PICK_QUEUE: &str = "sales";
const SIM_PICK_WORDS: [&str; 6] = ["buy", "price", "prices", "sales", "comprar", "precio"];

/// The simulation's routing: the default Push queue, and a Pick queue, "Sales".
fn simulation_routing() -> Routing {
    let sales = QueueId::from(SIM_PICK_QUEUE);
    Routing::new(Queue::fallback().name("General"))
        .add_queue(Queue::pick(sales.clone()).name("Sales"))
        .rules(RoutingRules::new(Queue::fallback().id).when(
            Condition::Keywords(SIM_PICK_WORDS.iter().map(|w| (*w).to_owned()).collect()),
            sales,
        ))
}

const PRIVACY_NOTICE: &str =
    "Hello! This conversation may be monitored, recorded and stored to help us serve you.";

/// Milliseconds since the Unix epoch.
fn unix_ms(t: SystemTime) -> u64 {
    u64::try_from(
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(u64::MAX)
}

/// Events pushed to agents' pages: `(agent or everyone, JSON)`.
type Bus = broadcast::Sender<(Option<String>, String)>;

/// Tells agents' pages what changed.
struct DeskNotifier {
    bus: Bus,
    profiles: Arc<Profiles>,
}

#[async_trait::async_trait]
impl AgentNotifier for DeskNotifier {
    async fn offer(&self, conversation: &Conversation, offer: &Offer) {
        let expires = unix_ms(offer.expires_at);
        // A transfer shows as Omnichannel's transfer notification: who, and their note.
        let event = json!({"type": "offer", "conversation": conversation.id().as_str(), "customer": conversation.customer().as_str(), "customer_tail": agent::customer_tail(conversation), "expires_at": expires, "transfer": agent::transfer_json(conversation)});
        let _ = self
            .bus
            .send((Some(offer.agent.as_str().to_owned()), event.to_string()));
        // Who is writing: fetched once for a new customer, off the webhook's path; the pages
        // read it again when it is in.
        agent::fetch_profile(&self.profiles, &self.bus, conversation);
    }

    async fn withdraw(&self, conversation: &ConversationId, agent: &AgentId) {
        let event = json!({"type": "withdraw", "conversation": conversation.as_str()});
        let _ = self
            .bus
            .send((Some(agent.as_str().to_owned()), event.to_string()));
    }

    async fn updated(&self, conversation: &Conversation, _lines: &[TranscriptLine]) {
        let event = json!({"type": "updated", "conversation": conversation.id().as_str()});
        let _ = self.bus.send((None, event.to_string()));
    }

    async fn consult(&self, conversation: &Conversation, agent: &AgentId) {
        let event = json!({"type": "consult", "conversation": conversation.id().as_str()});
        let _ = self
            .bus
            .send((Some(agent.as_str().to_owned()), event.to_string()));
    }

    async fn presence(&self, agent: &AgentId, presence: Presence) {
        // Set after a missed or rejected offer (`--presence-after-…`): the agent's open pages
        // show it in their presence control, with a notice.
        let event = json!({"type": "presence", "presence": presence.as_str()});
        let _ = self
            .bus
            .send((Some(agent.as_str().to_owned()), event.to_string()));
    }
}

struct Desk {
    engine: Arc<Engine>,
    /// Accounts, sessions and failed sign-ins.
    auth: Arc<auth::Auth>,
    store: Arc<SqliteStore>,
    bus: Bus,
    /// `Some` in simulation mode.
    simulation: Option<Mutex<Simulation>>,
    /// Where this desk's own `/webhook` is (the simulated customer posts there).
    webhook_base: String,
    /// The agent page's address (the simulated customer's files are there).
    base: String,
    secret: AppSecret,
    http: reqwest::Client,
    /// The Graph client, for sender actions (seen marks, typing).
    pages: Arc<GraphClient>,
    /// Customers' names and pictures (the Graph user profile, kept in the store).
    profiles: Arc<Profiles>,
    /// Whether opening a conversation marks it seen.
    mark_seen: bool,
    /// Whether the customer sees the agent typing.
    typing: bool,
    /// When a sender action (typing, seen) was last sent, by conversation and action.
    actions_sent: Mutex<HashMap<(String, bool), Instant>>,
}

type Shared = Arc<Desk>;

// Start-up reads top to bottom: options, stores, accounts, client, engine, routes, timer.
#[allow(clippy::too_many_lines)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("add-agent") {
        if let Err(e) = auth::add_agent(&args[1..]) {
            fail(&e);
        }
        return Ok(());
    }
    let options = options(&args).unwrap_or_else(|e| fail(&e));
    let real = if options.real {
        Some(credentials().unwrap_or_else(|e| fail(&e)))
    } else {
        if std::env::var_os("PAGE_ACCESS_TOKEN").is_some() {
            eprintln!(
                "desk: PAGE_ACCESS_TOKEN is set but --real is not given: running in simulation mode"
            );
        }
        None
    };
    let policy = match &options.policy {
        None => AttachmentPolicy::default(),
        Some(path) => {
            let config: PolicyConfig = toml::from_str(&std::fs::read_to_string(path)?)?;
            AttachmentPolicy::from_config(config)?
        }
    };

    std::fs::create_dir_all(&options.data)?;
    let store = Arc::new(SqliteStore::open(options.data.join("desk.db")).await?);
    // The desk's own index, for agents' closed conversations.
    agent::index_closed(&store).await?;

    // Accounts: the file's; in simulation also the demo accounts, with a password made now.
    let accounts_path = options
        .accounts
        .clone()
        .unwrap_or_else(|| options.data.join("agents.toml"));
    let demo_password = match real {
        Some(_) => None,
        None => Some(auth::random_password(12)?),
    };
    let demo = match &demo_password {
        Some(p) => auth::demo_accounts(p)?,
        None => Vec::new(),
    };
    let accounts = auth::Accounts::open(accounts_path.clone(), demo).unwrap_or_else(|e| fail(&e));
    if real.is_some() && accounts.count() == 0 {
        fail(&format!(
            "no agent accounts in {}: add one with `cargo run --example desk -- add-agent NAME` (the password is read from standard input)",
            accounts_path.display()
        ));
    }
    // Sessions of simulation and real mode are kept apart.
    let sessions_file = if real.is_some() {
        "sessions.json"
    } else {
        "sessions-simulation.json"
    };
    let sessions =
        auth::Sessions::open(options.data.join(sessions_file)).unwrap_or_else(|e| fail(&e));
    let auth = Arc::new(auth::Auth {
        accounts,
        sessions,
        limiter: auth::Limiter::default(),
    });

    let listener = tokio::net::TcpListener::bind(&options.agent_bind).await?;
    let agent_addr = listener.local_addr()?;
    let base = format!("http://{agent_addr}");
    let webhook_listener = match &options.webhook_bind {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
        None => None,
    };
    let webhook_base = match &webhook_listener {
        Some(l) => format!("http://{}", l.local_addr()?),
        None => base.clone(),
    };
    let allowed = Arc::new(web::Allowed::new(
        agent_addr,
        &options.origins,
        &options.hosts,
    ));

    let (secret, verify, client) = if let Some((token, secret, verify)) = &real {
        let secret = AppSecret::new(secret)?;
        let client = GraphClient::builder(PageAccessToken::new(token)?)
            .app_secret(secret.clone())
            .build()?;
        (secret, VerifyToken::new(verify)?, client)
    } else {
        let client = GraphClient::builder(PageAccessToken::new("simulation-token")?)
            .base_url(format!("{base}/fake-graph"))
            .build()?;
        (
            AppSecret::new(SIM_SECRET)?,
            VerifyToken::new(SIM_VERIFY)?,
            client,
        )
    };
    let client = Arc::new(client);
    let (bus, _) = broadcast::channel(1024);
    // Customers' names and pictures: asked once, kept in the desk's database for 7 days (the
    // default), and asked again after that.
    let profiles = Arc::new(Profiles::new(client.clone(), store.clone()));
    // A simulated page whose token was broken and fixed (`/sim/graph`) sends again within
    // seconds; a real one is checked again every 30 s, the default.
    let mut delivery = DeliveryConfig::default();
    if real.is_none() {
        delivery.attention_recheck = std::time::Duration::from_secs(2);
    }
    let mut builder = Engine::builder(Webhook::new(&secret), client.clone());
    if real.is_none() {
        builder = builder.routing(simulation_routing());
    }
    let engine = Arc::new(
        builder
            .store(store.clone())
            .media(store.clone())
            // Presence, capacity and offers live in the store: they survive a restart.
            .router(store.clone())
            .notifier(Arc::new(DeskNotifier {
                bus: bus.clone(),
                profiles: profiles.clone(),
            }))
            // Customers read agents' display names ("{AgentName} joined").
            .agent_names({
                let auth = auth.clone();
                Arc::new(move |agent: &AgentId| {
                    auth.accounts.get(agent.as_str()).map(|a| a.display_name)
                })
            })
            .attachment_policy(policy)
            .window(WindowConfig {
                human_agent_tag: true,
            })
            .config(
                ConversationConfig::default()
                    .privacy_notice(Some(PRIVACY_NOTICE.into()))
                    .offer_timeout(options.offer_timeout)
                    .presence_after_missed_offer(options.presence_after_missed_offer)
                    .presence_after_rejected_offer(options.presence_after_rejected_offer),
            )
            .download_inbound(true)
            .delivery(delivery)
            // One desk per data directory: after a restart it takes back at once what it
            // was delivering when it stopped.
            .instance("desk")
            .build(),
    );
    let desk = Arc::new(Desk {
        engine: engine.clone(),
        auth,
        store,
        bus,
        simulation: real.is_none().then(|| Mutex::new(Simulation::default())),
        webhook_base: webhook_base.clone(),
        base: base.clone(),
        secret,
        http: reqwest::Client::new(),
        pages: client,
        profiles,
        mark_seen: options.mark_seen,
        typing: options.typing,
        actions_sent: Mutex::new(HashMap::new()),
    });

    // Routes browsers write to take small JSON bodies; the file upload and the simulated
    // Graph API (which receives the agents' files) take files.
    let json_limit = axum::extract::DefaultBodyLimit::max(web::JSON_MAX_BYTES);
    let file_limit = axum::extract::DefaultBodyLimit::max(FILE_MAX_BYTES);
    let mut app = Router::new()
        .route("/", get(agent_page))
        .route("/desk/info", get(desk_info))
        .route("/desk/texts", get(i18n::texts))
        .route("/agent/signin", post(sign_in).layer(json_limit))
        .route("/agent/signout", post(sign_out).layer(json_limit))
        .route("/agent/me", get(me))
        .route("/agent/presence", post(presence).layer(json_limit))
        .route("/agent/file", post(send_file).layer(file_limit))
        .route("/agent/conversations", get(conversations))
        .route("/agent/conversation", get(conversation))
        .route("/agent/events", get(events))
        .route("/agent/pick", post(work::pick).layer(json_limit))
        .route("/agent/transfer", post(work::transfer).layer(json_limit))
        .route("/agent/consult", post(work::consult).layer(json_limit))
        .route("/agent/leave", post(work::leave).layer(json_limit))
        .route("/agent/note", post(work::note).layer(json_limit))
        .route("/supervisor/overview", get(supervise::overview))
        .route("/supervisor/conversation", get(supervise::watch))
        .route(
            "/supervisor/assign",
            post(supervise::assign).layer(json_limit),
        )
        .route(
            "/supervisor/close",
            post(supervise::force_close).layer(json_limit),
        )
        .route("/supervisor/note", post(supervise::note).layer(json_limit))
        .route("/agent/{action}", post(act).layer(json_limit))
        .route("/media/{key}", get(media::media));
    if real.is_none() {
        app = app
            .route("/customer", get(customer_page))
            .route("/sim/send", post(sim_send).layer(json_limit))
            .route("/sim/graph", post(sim_graph).layer(json_limit))
            .route("/sim/inbox", get(sim_inbox))
            .route("/sim/canary", get(sim_canary))
            .route("/sim/files/{name}", get(sim_file))
            .route("/sim/outbox/{n}", get(sim_outbox_file))
            .route(
                "/fake-graph/{version}/{page}/messages",
                post(fake_graph_messages).layer(file_limit),
            )
            .route("/fake-graph/{version}/{user}", get(fake_graph_profile));
    }
    let webhook = WebhookRoutes::new(engine.clone(), verify).router();
    let speaks = desk.clone();
    let mut app = app.with_state(desk);
    let webhook_app = if webhook_listener.is_some() {
        Some(
            Router::new()
                .nest("/webhook", webhook)
                .layer(axum::middleware::from_fn(web::json_errors)),
        )
    } else {
        app = app.nest("/webhook", webhook);
        None
    };
    let app = app
        .layer(axum::middleware::from_fn_with_state(
            allowed.clone(),
            web::check_writes,
        ))
        .layer(axum::middleware::from_fn_with_state(
            allowed.clone(),
            web::check_host,
        ))
        .layer(axum::middleware::from_fn(web::json_errors))
        // Every error in the agent's language (outermost: it sees every JSON error).
        .layer(axum::middleware::from_fn_with_state(speaks, i18n::localise));

    // The worker: deliveries from the outbox, retries, offers timing out, auto-close.
    let _worker = engine.start();

    println!("Agent desk: {base}/");
    if let Some(password) = &demo_password {
        println!(
            "Simulated customer: {base}/customer   (simulation mode; start with --real for Messenger)"
        );
        println!(
            "Simulation accounts: alice and bob (agents), sam (supervisor); password: {password}"
        );
    }
    println!("Webhook: {webhook_base}/webhook (put a public HTTPS URL in front of it)");
    println!(
        "Accounts: {}   Data: {}   Stop with Ctrl-C.",
        accounts_path.display(),
        options.data.display()
    );
    if let (Some(listener), Some(webhook_app)) = (webhook_listener, webhook_app) {
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, webhook_app).await {
                eprintln!("desk: the webhook listener stopped: {e}");
            }
        });
    }
    axum::serve(listener, app).await?;
    Ok(())
}
