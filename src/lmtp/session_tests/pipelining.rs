//! A whole Postfix session (two transactions with XFORWARD) sent in one write and byte by byte.

use super::*;

/// Two transactions with XFORWARD, as Postfix's LMTP client sends them.
const POSTFIX_SESSION: &str = "LHLO postfix.test\r\n\
    XFORWARD NAME=spike.example ADDR=192.0.2.1 PORT=25 HELO=[UNAVAILABLE] IDENT=4Xy+2BQ1 PROTO=ESMTP SOURCE=REMOTE\r\n\
    MAIL FROM:<a@b.test> SIZE=20 BODY=8BITMIME\r\nRCPT TO:<x@known.test>\r\nRCPT TO:<y@known.test>\r\nDATA\r\n\
    line 1\r\n.\r\nRSET\r\nMAIL FROM:<c@d.test> SMTPUTF8\r\nRCPT TO:<jö@known.test>\r\nDATA\r\n\
    \r\n..\r\n.\r\nQUIT\r\n";

fn postfix_transcript() -> Vec<&'static str> {
    let mut want = vec![GREETING];
    want.extend(LHLO);
    want.extend([
        "250 2.0.0 OK",
        "250 2.1.0 OK",
        "250 2.1.5 OK",
        "250 2.1.5 OK",
        "354 End data with <CR><LF>.<CR><LF>",
        "250 2.0.0 <x@known.test> delivered",
        "250 2.0.0 <y@known.test> delivered",
        "250 2.0.0 OK",
        "250 2.1.0 OK",
        "250 2.1.5 OK",
        "354 End data with <CR><LF>.<CR><LF>",
        "250 2.0.0 <jö@known.test> delivered",
        "221 2.0.0 Bye",
    ]);
    want
}

fn check_postfix_deliveries(backend: &TestBackend) {
    let delivered = backend.delivered();
    assert_eq!(delivered.len(), 2);
    let (first, message) = &delivered[0];
    assert_eq!(first.mail_from, "a@b.test");
    assert_eq!(first.queue_id.as_deref(), Some("4Xy+Q1"));
    assert_eq!(first.client_addr.as_deref(), Some("192.0.2.1"));
    assert_eq!(first.client_name.as_deref(), Some("spike.example"));
    assert_eq!(first.client_helo, None);
    assert_eq!(first.protocol.as_deref(), Some("ESMTP"));
    assert!(!first.smtputf8);
    assert_eq!(message, b"line 1\r\n");
    // XFORWARD lasts one transaction (XFORWARD_README).
    let (second, message) = &delivered[1];
    assert_eq!(second.queue_id, None);
    assert_eq!(second.client_addr, None);
    assert!(second.smtputf8);
    assert_eq!(second.recipients, ["jö@known.test"]);
    assert_eq!(message, b"\r\n.\r\n");
}

#[tokio::test]
async fn whole_session_pipelined_in_one_write() {
    let backend = Arc::new(TestBackend::default());
    let (lines, result, writes) = transcript(
        Arc::clone(&backend),
        Limits::default(),
        vec![POSTFIX_SESSION.as_bytes().to_vec()],
    )
    .await;
    expect(&lines, &postfix_transcript());
    result.expect("session ends cleanly");
    check_postfix_deliveries(&backend);
    // RFC 2920: greeting, replies up to the first DATA's, the second DATA's, and 221.
    assert!(writes <= 4, "{writes} writes");
}

#[tokio::test]
async fn whole_session_byte_by_byte() {
    let backend = Arc::new(TestBackend::default());
    let chunks = POSTFIX_SESSION.bytes().map(|b| vec![b]).collect();
    let (lines, result, _) = transcript(Arc::clone(&backend), Limits::default(), chunks).await;
    expect(&lines, &postfix_transcript());
    result.expect("session ends cleanly");
    check_postfix_deliveries(&backend);
}
