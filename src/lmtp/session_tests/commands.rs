//! Commands: out of sequence, unknown or malformed, one reply per accepted recipient in order,
//! LHLO again.

use super::*;

#[tokio::test]
async fn commands_out_of_sequence_get_503() {
    let backend = Arc::new(TestBackend::default());
    let lines = replies(
        &backend,
        Limits::default(),
        "MAIL FROM:<a@b.test>\r\nXFORWARD NAME=x\r\nRCPT TO:<x@known.test>\r\nDATA\r\n\
         LHLO c.test\r\nRCPT TO:<x@known.test>\r\nDATA\r\nMAIL FROM:<a@b.test>\r\n\
         MAIL FROM:<a@b.test>\r\nXFORWARD NAME=x\r\nDATA\r\nRSET\r\nDATA\r\nQUIT\r\n",
    )
    .await;
    let mut want = vec![
        GREETING,
        "503 5.5.1 Send LHLO first",
        "503 5.5.1 Send LHLO first",
        "503 5.5.1 Need MAIL command",
        "503 5.5.1 Need MAIL command",
    ];
    want.extend(LHLO);
    want.extend([
        "503 5.5.1 Need MAIL command",
        "503 5.5.1 Need MAIL command",
        "250 2.1.0 OK",
        "503 5.5.1 Nested MAIL command",
        "503 5.5.1 Mail transaction in progress",
        "503 5.5.1 No valid recipients",
        "250 2.0.0 OK",
        "503 5.5.1 Need MAIL command",
        "221 2.0.0 Bye",
    ]);
    expect(&lines, &want);
    assert!(backend.delivered().is_empty());
}

#[tokio::test]
async fn unknown_and_malformed_commands() {
    let backend = Arc::new(TestBackend::default());
    let long = format!("NOOP {}\r\n", "x".repeat(600));
    let input = format!(
        "HELO c.test\r\nEHLO c.test\r\nLHLO c.test\r\nSTARTTLS\r\nMAIL FROM:a@b.test\r\n\
         MAIL FROM:<a@b.test> RET=HDRS\r\nMAIL FROM:<a@b.test> SIZE=ten\r\nMAIL FROM:<jö@b.test>\r\n\
         {long}MAIL FROM:<> BODY=8BITMIME\r\nRCPT TO:<nobody>\r\nRCPT TO:<jö@known.test>\r\n\
         RCPT TO:<x@known.test> NOTIFY=NEVER\r\nVRFY x\r\nNOOP hello\r\nDATA now\r\nQUIT\r\n"
    );
    let lines = replies(&backend, Limits::default(), &input).await;
    let mut want = vec![
        GREETING,
        "500 5.5.1 This is LMTP: use LHLO",
        "500 5.5.1 This is LMTP: use LHLO",
    ];
    want.extend(LHLO);
    want.extend([
        "500 5.5.1 Command unrecognized",
        "501 5.1.7 Bad sender address syntax",
        "555 5.5.4 Unsupported parameter RET",
        "501 5.5.4 Bad SIZE parameter",
        "553 5.6.7 Non-ASCII address needs SMTPUTF8",
        "500 5.5.2 Line too long",
        "250 2.1.0 OK",
        "501 5.1.3 Bad recipient address syntax",
        "553 5.6.7 Non-ASCII address needs SMTPUTF8",
        "555 5.5.4 Unsupported parameter NOTIFY",
        "252 2.5.0 Cannot VRFY user, but will accept message",
        "250 2.0.0 OK",
        "501 5.5.4 Syntax: DATA",
        "221 2.0.0 Bye",
    ]);
    expect(&lines, &want);
}

#[tokio::test]
async fn one_reply_per_accepted_recipient_in_order() {
    let backend = Arc::new(TestBackend::default());
    let lines = replies(
        &backend,
        Limits::default(),
        "LHLO c.test\r\nMAIL FROM:<>\r\nRCPT TO:<x@known.test>\r\nRCPT TO:<nobody@else.test>\r\n\
         RCPT TO:<X@Known.Test>\r\nRCPT TO:<y@known.test>\r\nRCPT TO:<x@known.test>\r\nDATA\r\n\
         Subject: hi\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n",
    )
    .await;
    expect(
        &lines[8..],
        &[
            "250 2.1.0 OK",
            "250 2.1.5 OK",
            "550 5.1.1 <nobody@else.test>: recipient unknown",
            "250 2.1.5 OK",
            "250 2.1.5 OK",
            "250 2.1.5 OK",
            "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 <x@known.test> delivered",
            "250 2.0.0 <X@Known.Test> delivered",
            "250 2.0.0 <y@known.test> delivered",
            "250 2.0.0 <x@known.test> delivered",
            "221 2.0.0 Bye",
        ],
    );
    let delivered = backend.delivered();
    assert_eq!(delivered.len(), 1);
    let (envelope, message) = &delivered[0];
    assert_eq!(envelope.mail_from, "");
    assert_eq!(
        envelope.recipients,
        [
            "x@known.test",
            "X@Known.Test",
            "y@known.test",
            "x@known.test"
        ]
    );
    assert_eq!(message, b"Subject: hi\r\n\r\n.leading dot\r\n");
}

#[tokio::test]
async fn lhlo_again_resets_the_transaction() {
    let backend = Arc::new(TestBackend::default());
    let lines = replies(
        &backend,
        Limits::default(),
        "LHLO c\r\nXFORWARD IDENT=Q1\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nLHLO c\r\nDATA\r\n\
         MAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
    )
    .await;
    assert!(lines.contains(&"503 5.5.1 Need MAIL command".to_string()));
    let delivered = backend.delivered();
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        delivered[0].0.queue_id, None,
        "LHLO dropped the XFORWARD attributes"
    );
}
