//! Engine behaviour beyond the scenario: concurrency, inbound media, recovery.

mod support;

use std::sync::Arc;
use std::time::Duration;

use messenger_channel::conversation::{Author, ConversationConfig, Effect, LineBody};
use messenger_channel::ids::{PageId, UserId};
use messenger_channel::send::{Media, MediaKind};
use messenger_channel::store::{Commit, ConversationStore, InMemoryStore, StoreError};
use messenger_channel::testing::t0;
use support::channel::{CUSTOMER, Channel, PAGE, signed, webhook};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_messages_from_one_customer_all_land_in_one_conversation() {
    let ch = Arc::new(Channel::new(&["alice"], ConversationConfig::default()));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let ch = ch.clone();
        tasks.push(tokio::spawn(async move {
            let (h, b) = signed(webhook().message(CUSTOMER, &format!("m_{i}"), "hi", t0()));
            // Each body arrives twice, like Meta's redeliveries.
            let first = ch.engine.handle_webhook(&h, &b, t0()).await.unwrap();
            let second = ch.engine.handle_webhook(&h, &b, t0()).await.unwrap();
            assert!(first.failed.is_empty() && second.failed.is_empty());
            first.handled + second.handled
        }));
    }
    let mut handled = 0;
    for t in tasks {
        handled += t.await.unwrap();
    }
    assert_eq!(handled, 40);
    let open = ch.store.list_open().await.unwrap();
    assert_eq!(
        open.len(),
        1,
        "one conversation, however the messages raced"
    );
    let transcript = ch
        .store
        .transcript(open[0].conversation.id())
        .await
        .unwrap();
    let mut mids: Vec<_> = transcript
        .iter()
        .filter(|l| l.author == Author::Customer)
        .filter_map(|l| l.mid.clone())
        .collect();
    mids.sort();
    let mut expected: Vec<_> = (0..40).map(|i| format!("m_{i}")).collect();
    expected.sort();
    assert_eq!(mids, expected);
}

#[tokio::test]
async fn inbound_files_are_downloaded_stored_and_checked_again() {
    let ch = Channel::with_downloads(&["alice"], ConversationConfig::default(), true);
    let png = bytes::Bytes::from_static(include_bytes!("../examples/sample/logo.png"));
    let fake_exe = bytes::Bytes::from_static(
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8\x00",
    );
    ch.send.serve(
        "https://cdn.example/photo.png",
        Media {
            bytes: png.clone(),
            content_type: Some("image/png".into()),
            file_name: None,
        },
    );
    ch.send.serve(
        "https://cdn.example/holiday.jpg",
        Media {
            bytes: fake_exe,
            content_type: Some("image/jpeg".into()),
            file_name: None,
        },
    );
    let (h, b) = signed(
        webhook()
            .attachment(
                CUSTOMER,
                "m_1",
                MediaKind::File,
                "https://cdn.example/photo.png",
                t0(),
            )
            .attachment(
                CUSTOMER,
                "m_2",
                MediaKind::File,
                "https://cdn.example/holiday.jpg",
                t0(),
            ),
    );
    ch.engine.handle_webhook(&h, &b, t0()).await.unwrap();
    let id = ch
        .store
        .find_open(&PageId::from(PAGE), &UserId::from(CUSTOMER))
        .await
        .unwrap()
        .unwrap()
        .conversation
        .id()
        .clone();
    let files: Vec<_> = ch
        .store
        .transcript(&id)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|l| match l.body {
            LineBody::File(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].size, Some(png.len() as u64));
    assert!(
        files[0].media_key.is_some() && files[0].rejected.is_none(),
        "{:?}",
        files[0]
    );
    // The name said .jpg; the bytes are an executable: refused once its first bytes are known.
    assert_eq!(
        files[1].rejected.as_ref().map(|r| r.code.as_str()),
        Some("content_blocked")
    );
    assert!(files[1].media_key.is_none());
}

#[tokio::test]
async fn a_stale_save_is_a_conflict() {
    // No lease: this test reads back what it committed as a recovery worker would after a
    // crash (the default lease is covered by the conformance suite).
    let store = InMemoryStore::new();
    let (c, effects) = messenger_channel::conversation::Conversation::start(
        "c1".into(),
        PageId::from(PAGE),
        UserId::from(CUSTOMER),
        messenger_channel::conversation::Inbound::new(None, vec![]),
        t0(),
        &ConversationConfig::default(),
    );
    let commit = |expected| Commit {
        conversation: c.clone(),
        expected_version: expected,
        transcript: vec![],
        effects: vec![],
        deadline: None,
        applies: None,
        at: t0(),
        claim: None,
    };
    let outbox: Vec<Effect> = effects.effects;
    let (v1, _) = store
        .commit(&Commit {
            effects: outbox.clone(),
            ..commit(None)
        })
        .await
        .unwrap();
    assert_eq!(v1, 1);
    assert!(
        matches!(store.commit(&commit(None)).await, Err(StoreError::Conflict)),
        "second open conversation"
    );
    let (v2, _) = store.commit(&commit(Some(1))).await.unwrap();
    assert_eq!(v2, 2);
    assert!(
        matches!(
            store.commit(&commit(Some(1))).await,
            Err(StoreError::Conflict)
        ),
        "stale version"
    );
    // Effects stay pending until completed, with stable keys.
    let pending = store.pending(100).await.unwrap();
    let effects: Vec<_> = pending.iter().map(|p| p.effect.clone()).collect();
    assert_eq!(effects, outbox);
    assert_eq!(pending[0].key, "c1:1:0");
    store.complete(&pending[0].key).await.unwrap();
    assert_eq!(store.pending(100).await.unwrap().len(), outbox.len() - 1);
}

#[tokio::test]
async fn recover_delivers_effects_left_pending() {
    // Commit a conversation whose effects were never delivered (a crash after the commit).
    // No lease: the committing instance is gone, so its claim is void (the default lease is
    // covered by the conformance suite).
    let ch = Channel::with_store(
        &["alice"],
        ConversationConfig::default(),
        false,
        InMemoryStore::new(),
    );
    let (c, effects) = messenger_channel::conversation::Conversation::start(
        "c1".into(),
        PageId::from(PAGE),
        UserId::from(CUSTOMER),
        messenger_channel::conversation::Inbound::new(
            Some("m_1".into()),
            vec![LineBody::Text("hi".into())],
        ),
        t0(),
        &ConversationConfig::default(),
    );
    let outbox: Vec<Effect> = effects.effects;
    ch.store
        .commit(&Commit {
            conversation: c,
            expected_version: None,
            transcript: vec![],
            effects: outbox,
            deadline: None,
            applies: None,
            at: t0(),
            // Committed by an instance that crashed before it could claim them.
            claim: None,
        })
        .await
        .unwrap();
    assert!(ch.notifier.all().is_empty());
    let report = ch
        .engine
        .deliver_due(t0() + Duration::from_secs(1))
        .await
        .unwrap();
    assert!(report.delivered > 0, "{report:?}");
    // The RequestOffer effect found alice: the conversation is offered to her now.
    assert!(
        ch.notifier
            .all()
            .iter()
            .any(|n| matches!(n, messenger_channel::agents::Notification::Offer { .. }))
    );
    assert!(ch.store.pending(100).await.unwrap().is_empty());
}

/// A file the CDN does not serve yet: the message is recorded with the file pending, and the
/// file is fetched again from the outbox until it is kept.
#[tokio::test]
async fn an_inbound_file_that_fails_to_download_is_fetched_again() {
    use messenger_channel::conversation::MediaState;
    // No outbox lease, so that the retry is due at the next tick instead of 60 s of real time
    // later (the default lease is covered by the conformance suite).
    let ch = Channel::with_store(
        &["alice"],
        ConversationConfig::default(),
        true,
        InMemoryStore::new(),
    );
    let url = "https://cdn.example/later.png";
    let unavailable = messenger_channel::send::SendError::UnexpectedResponse {
        status: 503,
        snippet: "try later".into(),
    };
    ch.send.fail_downloads(Some(unavailable));
    let (h, b) = signed(webhook().attachment(CUSTOMER, "m_1", MediaKind::File, url, t0()));
    ch.engine.handle_webhook(&h, &b, t0()).await.unwrap();
    let files = ch.file_lines(CUSTOMER).await;
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].media, MediaState::Pending, "{:?}", files[0]);
    // Still failing at the next tick: still pending.
    ch.engine.tick(t0() + Duration::from_secs(1)).await.unwrap();
    assert_eq!(ch.file_lines(CUSTOMER).await[0].media, MediaState::Pending);
    // The CDN answers now.
    ch.send.fail_downloads(None);
    let png = bytes::Bytes::from_static(include_bytes!("../examples/sample/logo.png"));
    ch.send.serve(
        url,
        Media {
            bytes: png.clone(),
            content_type: Some("image/png".into()),
            file_name: None,
        },
    );
    ch.engine.tick(t0() + Duration::from_secs(2)).await.unwrap();
    let files = ch.file_lines(CUSTOMER).await;
    assert_eq!(files.len(), 1, "the line is updated, not repeated");
    assert_eq!(files[0].media, MediaState::Stored);
    assert_eq!(files[0].size, Some(png.len() as u64));
    assert!(
        ch.store.pending(100).await.unwrap().is_empty(),
        "the fetch is done"
    );
}

/// A file whose link stopped working before it could be fetched is marked unavailable, with
/// the reason, and nothing stays pending.
#[tokio::test]
async fn an_inbound_file_whose_link_expired_is_marked_unavailable() {
    use messenger_channel::conversation::MediaState;
    // No outbox lease: see above.
    let ch = Channel::with_store(
        &["alice"],
        ConversationConfig::default(),
        true,
        InMemoryStore::new(),
    );
    ch.send.fail_downloads(Some(
        messenger_channel::send::SendError::UnexpectedResponse {
            status: 502,
            snippet: "bad gateway".into(),
        },
    ));
    let (h, b) = signed(webhook().attachment(
        CUSTOMER,
        "m_1",
        MediaKind::File,
        "https://cdn.example/gone.pdf",
        t0(),
    ));
    ch.engine.handle_webhook(&h, &b, t0()).await.unwrap();
    assert_eq!(ch.file_lines(CUSTOMER).await[0].media, MediaState::Pending);
    // Four days later (no `oe=` in the link: three days are tried).
    ch.engine
        .tick(t0() + Duration::from_secs(4 * 24 * 3600))
        .await
        .unwrap();
    let files = ch.file_lines(CUSTOMER).await;
    assert!(
        matches!(&files[0].media, MediaState::Unavailable(why) if why.contains("expired")),
        "{:?}",
        files[0]
    );
    assert!(ch.store.pending(100).await.unwrap().is_empty());
}

/// A file the CDN says is gone (404) is marked unavailable at once, not tried for days.
#[tokio::test]
async fn an_inbound_file_the_cdn_says_is_gone_is_unavailable_at_once() {
    use messenger_channel::conversation::MediaState;
    let ch = Channel::with_downloads(&["alice"], ConversationConfig::default(), true);
    let (h, b) = signed(webhook().attachment(
        CUSTOMER,
        "m_1",
        MediaKind::File,
        "https://cdn.example/404.pdf",
        t0(),
    ));
    ch.engine.handle_webhook(&h, &b, t0()).await.unwrap();
    let files = ch.file_lines(CUSTOMER).await;
    assert!(
        matches!(&files[0].media, MediaState::Unavailable(why) if why.contains("no longer serves")),
        "{:?}",
        files[0]
    );
    assert!(ch.store.pending(100).await.unwrap().is_empty());
}
