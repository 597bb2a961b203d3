use super::*;

const OURS: &str = "mx.mon.example.com";

fn settings() -> Settings {
    Settings {
        authserv_id: Some(OURS.into()),
        mynetworks: vec![
            parse_cidr("127.0.0.1/32").unwrap(),
            parse_cidr("[2001:db8::]/32").unwrap(),
        ],
    }
}

fn verify(from: &str, client: &str, results: &[&str]) -> Verification {
    let mut raw = String::new();
    for r in results {
        raw += &format!("Authentication-Results: {r}\r\n");
    }
    raw += &format!("From: {from}\r\nSubject: hello\r\n\r\nbody\r\n");
    let envelope = Envelope {
        mail_from: "bounce@signed.test".into(),
        client_addr: Some(client.into()),
        ..Envelope::default()
    };
    Verification::of(&Message::parse(raw.as_bytes()), &envelope, &settings())
}

#[test]
fn reads_only_this_instances_results() {
    let forged = "evil.example; dkim=pass header.d=signed.test; dmarc=pass header.from=signed.test";
    let v = verify("Ops <ops@signed.test>", "192.0.2.7", &[forged]);
    assert_eq!(v.dkim, None);
    assert_eq!(v.dmarc, None);
    assert_eq!(
        v.verified_by(&[Method::Dmarc, Method::Dkim, Method::Mynetworks]),
        Err("spf=not checked dkim=not checked dmarc=not checked, client not in mynetworks".into())
    );

    let ours = format!(
        "{}; dkim=pass header.d=signed.test header.s=sel; dmarc=pass (policy=reject) \
         header.from=signed.test; spf=fail smtp.mailfrom=bounce@signed.test",
        OURS.to_uppercase()
    );
    let v = verify("ops@signed.test", "192.0.2.7", &[forged, &ours]);
    assert_eq!(v.verified_by(&[Method::Dmarc]), Ok(Method::Dmarc));
    assert_eq!(
        v.verified_by(&[Method::Spf, Method::Dkim]),
        Ok(Method::Dkim)
    );
    assert!(!v.passes(Method::Spf));
    assert_eq!(v.verified_domain(), Some("signed.test"));
    assert_eq!(
        v.to_string(),
        "spf=fail dkim=pass dmarc=pass, client not in mynetworks"
    );
}

#[test]
fn aligns_with_the_from_domain() {
    let ours = |r: &str| format!("{OURS}; {r}");
    // A signature of another domain verifies that domain, not the From address's.
    let v = verify(
        "ops@signed.test",
        "192.0.2.7",
        &[&ours("dkim=pass header.d=other.test")],
    );
    assert!(!v.passes(Method::Dkim));
    assert_eq!(v.verified_domain(), None);
    // A parent domain's signature, or SPF for a subdomain's bounces, aligns (relaxed).
    let v = verify(
        "ops@alerts.signed.test",
        "192.0.2.7",
        &[&ours(
            "dkim=pass header.d=signed.test; spf=pass smtp.mailfrom=b@bounce.alerts.signed.test",
        )],
    );
    assert!(v.passes(Method::Dkim) && v.passes(Method::Spf));
    // A suffix that is not a label boundary does not.
    let v = verify(
        "ops@evilsigned.test",
        "192.0.2.7",
        &[&ours("dkim=pass header.d=signed.test")],
    );
    assert!(!v.passes(Method::Dkim));
    // DMARC's pass is for the domain it names.
    let v = verify(
        "ops@signed.test",
        "192.0.2.7",
        &[&ours("dmarc=pass header.from=other.test")],
    );
    assert!(!v.passes(Method::Dmarc));
    // One failing signature does not undo another that passed.
    let v = verify(
        "ops@signed.test",
        "192.0.2.7",
        &[&ours(
            "dkim=fail header.d=signed.test; dkim=pass header.d=signed.test",
        )],
    );
    assert_eq!(v.dkim.as_deref(), Some("pass"));
}

#[test]
fn trusts_clients_in_mynetworks() {
    assert!(verify("a@x.test", "127.0.0.1", &[]).passes(Method::Mynetworks));
    assert!(!verify("a@x.test", "127.0.0.2", &[]).passes(Method::Mynetworks));
    assert!(verify("a@x.test", "IPv6:2001:db8::25", &[]).passes(Method::Mynetworks));
    assert!(verify("a@x.test", "::ffff:127.0.0.1", &[]).passes(Method::Mynetworks));
    assert!(!verify("a@x.test", "[UNAVAILABLE]", &[]).passes(Method::Mynetworks));
    assert!(contains(
        parse_cidr("0.0.0.0/0").unwrap(),
        "203.0.113.9".parse().unwrap()
    ));
}

#[test]
fn reads_nothing_without_a_verifier() {
    let raw = format!("Authentication-Results: {OURS}; dmarc=pass header.from=a.test\r\nFrom: x@a.test\r\n\r\nb\r\n");
    let settings = Settings {
        authserv_id: None,
        ..settings()
    };
    let v = Verification::of(
        &Message::parse(raw.as_bytes()),
        &Envelope::default(),
        &settings,
    );
    assert_eq!(v.dmarc, None);
    assert_eq!(v.from_domain.as_deref(), Some("a.test"));
}
