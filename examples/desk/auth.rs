//! Agents sign in: accounts in a TOML file the admin edits (`agents.toml` in the data
//! directory), passwords checked with argon2, sessions kept by the server (in the data
//! directory, only a SHA-256 of each session id at rest) behind an `HttpOnly`,
//! `SameSite=Strict` cookie, and a limit on failed sign-ins.
//!
//! Accounts are made with `cargo run --example desk -- add-agent NAME --role agent
//! --capacity 3` (the password is read from standard input, never from the command line).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use messenger_channel::ids::AgentId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Shared;
use crate::web::error_response;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "desk_session";
/// How long a session lasts after sign-in.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);
/// The shortest password `add-agent` accepts.
const PASSWORD_MIN_CHARS: usize = 8;
/// The longest password checked (argon2 takes any length; this bounds the work).
const PASSWORD_MAX_BYTES: usize = 1024;
/// The longest agent name.
const NAME_MAX_CHARS: usize = 40;
/// Failed sign-ins for one name within [`FAILURE_WINDOW`] before it is refused for a while.
const MAX_FAILURES_PER_NAME: usize = 5;
/// Failed sign-ins for all names together within [`FAILURE_WINDOW`] (bounds the argon2 work an
/// attacker can cause).
const MAX_FAILURES_TOTAL: usize = 50;
/// The window failed sign-ins are counted in.
const FAILURE_WINDOW: Duration = Duration::from_secs(5 * 60);
/// The demo accounts of simulation mode: name, display name, role.
pub(crate) const DEMO_ACCOUNTS: [(&str, &str, Role); 3] = [
    ("alice", "Alice", Role::Agent),
    ("bob", "Bob", Role::Agent),
    ("sam", "Sam (supervisor)", Role::Supervisor),
];
/// The capacity of a demo account and the default of `add-agent`.
pub(crate) const DEFAULT_CAPACITY: u32 = 10;

/// What an account may do. Supervisors sign in like agents and are offered conversations
/// the same way; the role is shown on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    Agent,
    Supervisor,
}

impl Role {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "agent" => Some(Self::Agent),
            "supervisor" => Some(Self::Supervisor),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Supervisor => "supervisor",
        }
    }
}

/// One agent's account, as the accounts file holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Account {
    pub(crate) name: String,
    pub(crate) display_name: String,
    pub(crate) role: Role,
    /// How many conversations the agent holds at once.
    pub(crate) capacity: u32,
    /// The argon2 hash of the password (PHC string).
    pub(crate) password_hash: String,
    /// The desk's language for this agent (`en`, `es`); none: the browser's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) language: Option<String>,
}

/// The accounts file: `[[agent]]` tables.
#[derive(Debug, Default, Serialize, Deserialize)]
struct AccountsFile {
    #[serde(default, rename = "agent")]
    agents: Vec<Account>,
}

/// Whether `name` is a valid agent name: 1 to 40 letters, digits, `-` and `_`.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= NAME_MAX_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn read_accounts(path: &Path) -> Result<Vec<Account>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str::<AccountsFile>(&text)
            .map(|f| f.agents)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Writes `bytes` to `path` through a temporary file and a rename, readable by the owner
/// only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// The agents' accounts: the file, read again when it changes, and in simulation mode the
/// demo accounts (kept in memory, never written to the file).
pub(crate) struct Accounts {
    path: PathBuf,
    demo: Vec<Account>,
    loaded: Mutex<(Option<SystemTime>, HashMap<String, Account>)>,
}

impl Accounts {
    /// Reads the accounts file (absent: no accounts).
    pub(crate) fn open(path: PathBuf, demo: Vec<Account>) -> Result<Self, String> {
        let stamp = modified(&path);
        let accounts = read_accounts(&path)?;
        let map = accounts.into_iter().map(|a| (a.name.clone(), a)).collect();
        Ok(Self {
            path,
            demo,
            loaded: Mutex::new((stamp, map)),
        })
    }

    /// The account named `name`, from the file as it is now (a file that no longer parses
    /// keeps the accounts last read, and says so on standard error).
    pub(crate) fn get(&self, name: &str) -> Option<Account> {
        let mut loaded = self.loaded.lock().unwrap();
        let stamp = modified(&self.path);
        if stamp != loaded.0 {
            match read_accounts(&self.path) {
                Ok(accounts) => {
                    loaded.1 = accounts.into_iter().map(|a| (a.name.clone(), a)).collect();
                    loaded.0 = stamp;
                }
                Err(e) => {
                    eprintln!("desk: the accounts file does not parse, kept the last one: {e}");
                }
            }
        }
        loaded
            .1
            .get(name)
            .cloned()
            .or_else(|| self.demo.iter().find(|a| a.name == name).cloned())
    }

    /// How many accounts there are (the file's and the demo ones).
    pub(crate) fn count(&self) -> usize {
        self.loaded.lock().unwrap().1.len() + self.demo.len()
    }
}

/// An argon2id hash of `password` with a fresh random salt.
pub(crate) fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// A hash no password matches, checked for unknown names so that they take as long as known
/// ones.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut random = [0u8; 24];
        let _ = getrandom::fill(&mut random);
        hash_password(&hex(&random)).unwrap_or_default()
    })
}

/// Whether `password` is the account's (argon2's check compares in constant time). An
/// unknown account is checked against a dummy hash, so the answer takes as long.
fn verify(account: Option<&Account>, password: &str) -> bool {
    let stored: &str = match account {
        Some(a) => &a.password_hash,
        None => dummy_hash(),
    };
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && account.is_some()
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `n` random characters a person can type (no look-alikes).
pub(crate) fn random_password(n: usize) -> Result<String, String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect())
}

// ---- Sessions ----

/// A session as stored: whose it is and until when (Unix seconds).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionRecord {
    agent: String,
    expires: u64,
}

fn unix_s(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The SHA-256 of a session id, as stored (a copy of the file gives no one a session).
fn session_key(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// The sessions, kept in a file of the data directory so they survive a restart.
pub(crate) struct Sessions {
    path: PathBuf,
    map: Mutex<HashMap<String, SessionRecord>>,
}

impl Sessions {
    /// Reads the sessions file (absent: none), dropping expired sessions.
    pub(crate) fn open(path: PathBuf) -> Result<Self, String> {
        let map: HashMap<String, SessionRecord> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                eprintln!(
                    "desk: {} does not parse ({e}); everyone signs in again",
                    path.display()
                );
                HashMap::new()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let now = unix_s(SystemTime::now());
        let map = map.into_iter().filter(|(_, s)| s.expires > now).collect();
        Ok(Self {
            path,
            map: Mutex::new(map),
        })
    }

    fn save(&self, map: &HashMap<String, SessionRecord>) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(map).map_err(std::io::Error::other)?;
        write_private(&self.path, &bytes)
    }

    /// A new session for `agent`; returns its id (the cookie's value).
    pub(crate) fn create(&self, agent: &str) -> std::io::Result<String> {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(std::io::Error::other)?;
        let token = hex(&random);
        let now = SystemTime::now();
        let mut map = self.map.lock().unwrap();
        let now_s = unix_s(now);
        map.retain(|_, s| s.expires > now_s);
        map.insert(
            session_key(&token),
            SessionRecord {
                agent: agent.to_owned(),
                expires: unix_s(now + SESSION_TTL),
            },
        );
        self.save(&map)?;
        Ok(token)
    }

    /// The agent whose live session `token` is.
    pub(crate) fn agent(&self, token: &str) -> Option<String> {
        let now = unix_s(SystemTime::now());
        let map = self.map.lock().unwrap();
        map.get(&session_key(token))
            .filter(|s| s.expires > now)
            .map(|s| s.agent.clone())
    }

    /// Ends the session; returns whether the agent still has another live session.
    pub(crate) fn remove(&self, token: &str, agent: &str) -> std::io::Result<bool> {
        let now = unix_s(SystemTime::now());
        let mut map = self.map.lock().unwrap();
        map.remove(&session_key(token));
        map.retain(|_, s| s.expires > now);
        self.save(&map)?;
        Ok(map.values().any(|s| s.agent == agent))
    }
}

/// The session id the request's cookie carries.
pub(crate) fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE && value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| value.to_owned())
        })
}

/// The `Set-Cookie` value for a new session (`Secure` when the page is served over HTTPS).
pub(crate) fn session_cookie(token: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value = format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        SESSION_TTL.as_secs()
    );
    HeaderValue::from_str(&value).expect("a cookie of hex digits and ASCII is a header value")
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn expired_cookie(secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}"
    ))
    .expect("ASCII")
}

// ---- Failed sign-ins ----

/// Counts failed sign-ins, per name and in all, within [`FAILURE_WINDOW`].
#[derive(Default)]
pub(crate) struct Limiter {
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

/// The key all failures are also counted under.
const ALL: &str = "";

impl Limiter {
    /// `Err(wait)` when `name` (or everyone) failed too often lately.
    fn check(&self, name: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap();
        failures.retain(|_, times| {
            times.retain(|t| now.duration_since(*t) < FAILURE_WINDOW);
            !times.is_empty()
        });
        for (key, max) in [(name, MAX_FAILURES_PER_NAME), (ALL, MAX_FAILURES_TOTAL)] {
            if let Some(times) = failures.get(key).filter(|t| t.len() >= max) {
                let oldest = times.iter().min().copied().unwrap_or(now);
                return Err(FAILURE_WINDOW.saturating_sub(now.duration_since(oldest)));
            }
        }
        Ok(())
    }

    fn failed(&self, name: &str) {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap();
        failures.entry(name.to_owned()).or_default().push(now);
        failures.entry(ALL.to_owned()).or_default().push(now);
    }

    fn succeeded(&self, name: &str) {
        self.failures.lock().unwrap().remove(name);
    }
}

/// Accounts, sessions and the failure count together.
pub(crate) struct Auth {
    pub(crate) accounts: Accounts,
    pub(crate) sessions: Sessions,
    pub(crate) limiter: Limiter,
}

/// Why a sign-in failed, in the words the page shows.
pub(crate) enum SignInError {
    /// Wrong name or password (which one is not said).
    Wrong,
    /// Too many failures lately.
    TooMany(Duration),
    /// The session could not be saved.
    Store(std::io::Error),
}

impl SignInError {
    pub(crate) fn response(&self) -> Response {
        match self {
            Self::Wrong => error_response(
                StatusCode::UNAUTHORIZED,
                "That name and password do not match an account.",
            ),
            Self::TooMany(wait) => error_response(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many failed sign-ins. Try again in {} minute(s).",
                    wait.as_secs().div_ceil(60).max(1)
                ),
            ),
            Self::Store(e) => {
                eprintln!("desk: could not save a session: {e}");
                error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The desk could not start your session. Try again.",
                )
            }
        }
    }
}

impl Auth {
    /// Checks a name and password; on success, a new session: `(account, session id)`. The
    /// check runs on a blocking thread (argon2 takes tens of milliseconds on purpose).
    pub(crate) async fn sign_in(
        self: &std::sync::Arc<Self>,
        name: &str,
        password: &str,
    ) -> Result<(Account, String), SignInError> {
        let name = name.trim();
        if !valid_name(name) || password.len() > PASSWORD_MAX_BYTES {
            return Err(SignInError::Wrong);
        }
        self.limiter.check(name).map_err(SignInError::TooMany)?;
        let account = self.accounts.get(name);
        let checked = account.clone();
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || verify(checked.as_ref(), &password))
            .await
            .unwrap_or(false);
        match account {
            Some(account) if ok => {
                self.limiter.succeeded(name);
                let token = self.sessions.create(name).map_err(SignInError::Store)?;
                Ok((account, token))
            }
            _ => {
                self.limiter.failed(name);
                Err(SignInError::Wrong)
            }
        }
    }
}

/// The signed-in agent of a request, from its session cookie alone. Routes that take it
/// answer 401 with a JSON error when there is no valid session.
pub(crate) struct SignedIn {
    pub(crate) agent: AgentId,
    pub(crate) account: Account,
    pub(crate) token: String,
    /// The agent's language: the account's, else the browser's.
    pub(crate) lang: messenger_channel::texts::Language,
}

impl FromRequestParts<Shared> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, desk: &Shared) -> Result<Self, Self::Rejection> {
        let unauthorized = || {
            error_response(
                StatusCode::UNAUTHORIZED,
                "You are not signed in, or your session has ended. Sign in again.",
            )
        };
        let token = session_token(&parts.headers).ok_or_else(unauthorized)?;
        let name = desk.auth.sessions.agent(&token).ok_or_else(unauthorized)?;
        // An account removed from the file ends its sessions.
        let account = desk.auth.accounts.get(&name).ok_or_else(unauthorized)?;
        let lang = crate::i18n::language(Some(&account), &parts.headers);
        Ok(Self {
            agent: AgentId::from(name.as_str()),
            account,
            token,
            lang,
        })
    }
}

// ---- The add-agent command ----

/// A language the desk speaks, for `--language`.
fn desk_language(lang: &str) -> Result<String, String> {
    if crate::i18n::LANGUAGES.iter().any(|l| l.as_str() == lang) {
        Ok(lang.to_owned())
    } else {
        Err("--language takes en or es".to_owned())
    }
}

/// `desk add-agent NAME [--role agent|supervisor] [--capacity N] [--display-name TEXT]
/// [--data DIR | --accounts FILE]`: creates or updates an account; the password is the first
/// line of standard input.
pub(crate) fn add_agent(args: &[String]) -> Result<(), String> {
    let usage = "usage: desk add-agent NAME [--role agent|supervisor] [--capacity N] [--display-name TEXT] [--language en|es] [--data DIR | --accounts FILE]  (the password is read from standard input)";
    let mut args = args.iter();
    let name = args.next().ok_or(usage)?.clone();
    if !valid_name(&name) {
        return Err(format!(
            "an agent name is 1 to {NAME_MAX_CHARS} letters, digits, - and _: `{name}`"
        ));
    }
    let (mut role, mut capacity, mut display, mut data, mut file) =
        (None, None, None, PathBuf::from("desk-data"), None);
    let mut language = None;
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--role" => {
                role = Some(Role::parse(&value()?).ok_or("--role takes agent or supervisor")?);
            }
            "--capacity" => {
                capacity = Some(
                    value()?
                        .parse::<u32>()
                        .ok()
                        .filter(|c| (1..=100).contains(c))
                        .ok_or("--capacity takes a number from 1 to 100")?,
                );
            }
            "--display-name" => display = Some(value()?),
            "--language" => language = Some(desk_language(&value()?)?),
            "--data" => data = PathBuf::from(value()?),
            "--accounts" => file = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(usage.to_owned()),
            other => return Err(format!("unexpected argument `{other}`\n{usage}")),
        }
    }
    let path = file.unwrap_or_else(|| data.join("agents.toml"));
    let mut accounts = read_accounts(&path)?;
    let existing = accounts.iter().position(|a| a.name == name);

    eprintln!(
        "Password for {name} (one line on standard input, at least {PASSWORD_MIN_CHARS} characters):"
    );
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .map_err(|e| format!("reading the password: {e}"))?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.chars().count() < PASSWORD_MIN_CHARS || password.len() > PASSWORD_MAX_BYTES {
        return Err(format!(
            "a password has {PASSWORD_MIN_CHARS} to {PASSWORD_MAX_BYTES} characters"
        ));
    }
    let password_hash = hash_password(password)?;
    let account = if let Some(i) = existing {
        let a = &mut accounts[i];
        a.role = role.unwrap_or(a.role);
        a.capacity = capacity.unwrap_or(a.capacity);
        if let Some(d) = display {
            a.display_name = d;
        }
        a.language = language.or(a.language.take());
        a.password_hash = password_hash;
        a.clone()
    } else {
        let a = Account {
            display_name: display.unwrap_or_else(|| name.clone()),
            name: name.clone(),
            role: role.unwrap_or(Role::Agent),
            capacity: capacity.unwrap_or(DEFAULT_CAPACITY),
            password_hash,
            language,
        };
        accounts.push(a.clone());
        a
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let text = toml::to_string(&AccountsFile { agents: accounts }).map_err(|e| e.to_string())?;
    let header = "# The desk's agents: edit names, roles and capacities here; set passwords with\n# `cargo run --example desk -- add-agent NAME` (the password is read from standard input).\n\n";
    write_private(&path, format!("{header}{text}").as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    println!(
        "{} {} ({}, capacity {}) in {}",
        if existing.is_some() {
            "Updated"
        } else {
            "Added"
        },
        account.name,
        account.role.as_str(),
        account.capacity,
        path.display()
    );
    Ok(())
}

/// The demo accounts of simulation mode, all with `password`.
pub(crate) fn demo_accounts(password: &str) -> Result<Vec<Account>, String> {
    let hash = hash_password(password)?;
    Ok(DEMO_ACCOUNTS
        .iter()
        .map(|(name, display, role)| Account {
            name: (*name).to_owned(),
            display_name: (*display).to_owned(),
            role: *role,
            capacity: DEFAULT_CAPACITY,
            password_hash: hash.clone(),
            language: None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_and_another_does_not() {
        let hash = hash_password("correct horse").unwrap();
        let account = Account {
            name: "a".into(),
            display_name: "A".into(),
            role: Role::Agent,
            capacity: 1,
            password_hash: hash,
            language: None,
        };
        assert!(verify(Some(&account), "correct horse"));
        assert!(!verify(Some(&account), "correct horsE"));
        assert!(!verify(None, "correct horse"));
    }

    #[test]
    fn the_cookie_is_read_only_when_well_formed() {
        let mut headers = HeaderMap::new();
        let token = "ab".repeat(32);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("x=1; {COOKIE}={token}")).unwrap(),
        );
        assert_eq!(session_token(&headers), Some(token));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("desk_session=../x"),
        );
        assert_eq!(session_token(&headers), None);
    }

    #[test]
    fn too_many_failures_are_refused() {
        let limiter = Limiter::default();
        for _ in 0..MAX_FAILURES_PER_NAME {
            assert!(limiter.check("bob").is_ok());
            limiter.failed("bob");
        }
        assert!(limiter.check("bob").is_err());
        assert!(limiter.check("alice").is_ok());
    }
}
