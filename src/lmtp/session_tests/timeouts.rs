//! Idle clients, in commands and in DATA, and the minimum data rate (with paused time).

use super::*;

#[tokio::test(start_paused = true)]
async fn idle_client_gets_421() {
    let backend = Arc::new(TestBackend::default());
    let mut client = Client::start(&backend, Limits::default());
    assert_eq!(client.reply().await.as_deref(), Some(GREETING));
    client.send("LHLO c\r\nNOO").await;
    assert!(client.reply().await.is_some());
    let started = tokio::time::Instant::now();
    assert_eq!(
        client.reply().await.as_deref(),
        Some("421 4.4.2 Idle timeout, closing")
    );
    assert_eq!(client.reply().await, None);
    assert!(started.elapsed() >= Duration::from_secs(299));
    client
        .session
        .await
        .expect("session task")
        .expect("clean end");
}

#[tokio::test(start_paused = true)]
async fn idle_client_in_data_gets_421_and_nothing_is_delivered() {
    let backend = Arc::new(TestBackend::default());
    let mut client = Client::start(&backend, Limits::default());
    client
        .send("LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nDATA\r\nhalf")
        .await;
    for _ in 0..5 {
        assert!(client.reply().await.is_some());
    }
    assert_eq!(
        client.reply().await.as_deref(),
        Some("421 4.4.2 Idle timeout, closing")
    );
    assert!(backend.delivered().is_empty());
}

/// Starts a session and sends the envelope and DATA for x@known.test.
async fn in_data(backend: &Arc<TestBackend>) -> Client {
    let mut client = Client::start(backend, Limits::default());
    client
        .send("LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nDATA\r\n")
        .await;
    for _ in 0..5 {
        assert!(client.reply().await.is_some());
    }
    client
}

#[tokio::test(start_paused = true)]
async fn data_trickled_a_byte_every_ten_seconds_gets_421_after_the_idle_timeout() {
    let backend = Arc::new(TestBackend::default());
    let mut client = in_data(&backend).await;
    let started = tokio::time::Instant::now();
    // Each byte comes well within the idle timeout; the message as a whole does not.
    let reply = loop {
        client.send("x").await;
        if let Ok(reply) = tokio::time::timeout(Duration::from_secs(10), client.reply()).await {
            break reply;
        }
    };
    assert_eq!(reply.as_deref(), Some("421 4.4.2 Idle timeout, closing"));
    let elapsed = started.elapsed();
    assert!(
        (Duration::from_secs(299)..Duration::from_secs(311)).contains(&elapsed),
        "{elapsed:?}"
    );
    assert!(backend.delivered().is_empty());
}

#[tokio::test(start_paused = true)]
async fn data_at_the_minimum_rate_is_never_cut_off() {
    let backend = Arc::new(TestBackend::default());
    let mut client = in_data(&backend).await;
    // 500 octets a second for 20 minutes: four idle timeouts.
    let line = format!("{}\r\n", "x".repeat(498));
    for _ in 0..1200 {
        client.send(&line).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    client.send(".\r\n").await;
    assert_eq!(
        client.reply().await.as_deref(),
        Some("250 2.0.0 <x@known.test> delivered")
    );
    assert_eq!(backend.delivered()[0].1.len(), 1200 * 500);
}
