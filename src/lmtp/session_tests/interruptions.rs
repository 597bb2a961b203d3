//! A session interrupted: a backend that panics, a shutdown while idle or in DATA, a client
//! that goes away mid-DATA.

use super::*;

#[tokio::test]
async fn panicking_backend_gets_451_and_the_session_goes_on() {
    let backend = Arc::new(TestBackend::default());
    let lines = replies(
        &backend,
        Limits::default(),
        "LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nRCPT TO:<y@known.test>\r\nDATA\r\n\
         PANIC\r\n.\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nRCPT TO:<y@known.test>\r\nDATA\r\n\
         SHORT\r\n.\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nDATA\r\nfine\r\n.\r\nQUIT\r\n",
    )
    .await;
    let data_replies: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .filter(|l| l.starts_with("451") || l.contains("delivered"))
        .collect();
    let local_error = "451 4.3.0 Local error in processing, try again later";
    assert_eq!(
        data_replies,
        [
            local_error,
            local_error,
            local_error,
            local_error,
            "250 2.0.0 <x@known.test> delivered"
        ]
    );
    assert_eq!(lines.last().map(String::as_str), Some("221 2.0.0 Bye"));
}

#[tokio::test]
async fn shutdown_while_idle_gets_421() {
    let backend = Arc::new(TestBackend::default());
    let mut client = Client::start(&backend, Limits::default());
    assert_eq!(client.reply().await.as_deref(), Some(GREETING));
    client.send("LHLO c\r\n").await;
    assert!(client.reply().await.is_some());
    client.shut_down();
    assert_eq!(
        client.reply().await.as_deref(),
        Some("421 4.3.2 Service shutting down")
    );
    assert_eq!(client.reply().await, None);
    client
        .session
        .await
        .expect("session task")
        .expect("clean end");
}

#[tokio::test]
async fn shutdown_during_data_finishes_the_transaction_first() {
    let backend = Arc::new(TestBackend::default());
    let mut client = Client::start(&backend, Limits::default());
    client
        .send("LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nDATA\r\n")
        .await;
    for _ in 0..5 {
        assert!(client.reply().await.is_some());
    }
    client.send("first half\r\n").await;
    tokio::task::yield_now().await;
    client.shut_down();
    tokio::task::yield_now().await;
    client.send("second half\r\n.\r\n").await;
    assert_eq!(
        client.reply().await.as_deref(),
        Some("250 2.0.0 <x@known.test> delivered")
    );
    assert_eq!(
        client.reply().await.as_deref(),
        Some("421 4.3.2 Service shutting down")
    );
    assert_eq!(client.reply().await, None);
    assert_eq!(backend.delivered()[0].1, b"first half\r\nsecond half\r\n");
}

#[tokio::test]
async fn client_closing_mid_data_delivers_nothing() {
    let backend = Arc::new(TestBackend::default());
    let (_, result, _) = transcript(
        Arc::clone(&backend),
        Limits::default(),
        vec![
            b"LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nDATA\r\nno end\r\n"
                .to_vec(),
        ],
    )
    .await;
    let error = result.expect_err("end of stream in DATA is an I/O error");
    assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    assert!(backend.delivered().is_empty());
}
