//! The PostgreSQL test server: its URL (from `MESSENGER_CHANNEL_TEST_POSTGRES`), and fresh
//! databases on it for tests that need one of their own.

/// PostgreSQL's URL; outside CI, when unset, `None` with a loud skip message (in CI, unset is
/// a failure).
pub fn postgres_url() -> Option<String> {
    match std::env::var("MESSENGER_CHANNEL_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set MESSENGER_CHANNEL_TEST_POSTGRES"
            );
            eprintln!(
                "\n*** SKIPPED: PostgreSQL tests need MESSENGER_CHANNEL_TEST_POSTGRES (see README) ***\n"
            );
            None
        }
    }
}

/// A new, empty database `name` on the server at `url`; returns its URL.
pub async fn fresh_postgres_database(url: &str, name: &str) -> String {
    use sqlx::Executor as _;
    let admin = sqlx::PgPool::connect(url).await.unwrap();
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
        .await
        .unwrap();
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    admin.close().await;
    let base = url.rsplit_once('/').expect("a database in the URL").0;
    format!("{base}/{name}")
}
