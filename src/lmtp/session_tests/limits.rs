//! Limits: the declared and the actual message size, recipients per transaction, errors per
//! session.

use super::*;

#[tokio::test]
async fn declared_size_over_limit_is_refused_at_mail() {
    let backend = Arc::new(TestBackend::default());
    let limits = Limits {
        max_message_size: 100,
        ..Limits::default()
    };
    let lines = replies(
        &backend,
        limits,
        "LHLO c\r\nMAIL FROM:<a@b.test> SIZE=101\r\nMAIL FROM:<a@b.test> SIZE=100\r\nQUIT\r\n",
    )
    .await;
    expect(
        &lines[1..],
        &[
            "250-mx.test",
            "250-PIPELINING",
            "250-ENHANCEDSTATUSCODES",
            "250-8BITMIME",
            "250-SIZE 100",
            "250-SMTPUTF8",
            "250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE",
            "552 5.3.4 Message size exceeds fixed maximum message size",
            "250 2.1.0 OK",
            "221 2.0.0 Bye",
        ],
    );
}

#[tokio::test]
async fn data_over_limits_gets_552_per_recipient() {
    let backend = Arc::new(TestBackend::default());
    let limits = Limits {
        max_message_size: 2000,
        ..Limits::default()
    };
    let big = format!("{}\r\n", "x".repeat(60)).repeat(20);
    let long = "y".repeat(1000);
    let input = format!(
        "LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nRCPT TO:<y@known.test>\r\nDATA\r\n\
         {big}{big}.\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nDATA\r\n{long}\r\n.\r\n\
         MAIL FROM:<a@b.test>\r\nRCPT TO:<x@known.test>\r\nDATA\r\nsmall\r\n.\r\nQUIT\r\n"
    );
    let lines = replies(&backend, limits, &input).await;
    expect(
        &lines[8..],
        &[
            "250 2.1.0 OK",
            "250 2.1.5 OK",
            "250 2.1.5 OK",
            "354 End data with <CR><LF>.<CR><LF>",
            "552 5.3.4 Message too big",
            "552 5.3.4 Message too big",
            "250 2.1.0 OK",
            "250 2.1.5 OK",
            "354 End data with <CR><LF>.<CR><LF>",
            "552 5.3.4 Message line too long",
            "250 2.1.0 OK",
            "250 2.1.5 OK",
            "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 <x@known.test> delivered",
            "221 2.0.0 Bye",
        ],
    );
    let delivered = backend.delivered();
    assert_eq!(delivered.len(), 1, "only the small message is delivered");
    assert_eq!(delivered[0].1, b"small\r\n");
}

#[tokio::test]
async fn recipients_past_the_limit_get_452() {
    let backend = Arc::new(TestBackend::default());
    let limits = Limits {
        max_recipients: 2,
        ..Limits::default()
    };
    let lines = replies(
        &backend,
        limits,
        "LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<a@known.test>\r\nRCPT TO:<b@known.test>\r\n\
         RCPT TO:<c@known.test>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
    )
    .await;
    expect(
        &lines[8..],
        &[
            "250 2.1.0 OK",
            "250 2.1.5 OK",
            "250 2.1.5 OK",
            "452 4.5.3 Too many recipients",
            "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 <a@known.test> delivered",
            "250 2.0.0 <b@known.test> delivered",
            "221 2.0.0 Bye",
        ],
    );
}

#[tokio::test]
async fn too_many_errors_close_with_421() {
    let backend = Arc::new(TestBackend::default());
    let limits = Limits {
        max_errors: 3,
        ..Limits::default()
    };
    // Unknown recipients and a 503 for DATA after them are not counted as bad commands.
    let (lines, result, _) = transcript(
        backend,
        limits,
        vec![
            b"LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<n1@x.test>\r\nRCPT TO:<n2@x.test>\r\n\
               RCPT TO:<n3@x.test>\r\nRCPT TO:<n4@x.test>\r\nDATA\r\nRSET\r\n\
               FOO\r\nBAR\r\nHELO x\r\nBAZ\r\nNOOP\r\n"
                .to_vec(),
        ],
    )
    .await;
    result.expect("session ends cleanly");
    expect(
        &lines[lines.len() - 5..],
        &[
            "500 5.5.1 Command unrecognized",
            "500 5.5.1 Command unrecognized",
            "500 5.5.1 This is LMTP: use LHLO",
            "500 5.5.1 Command unrecognized",
            "421 4.7.0 Too many errors, closing",
        ],
    );
}
