//! The config file's tests: parsing, checks, and where the command line finds it.

use super::*;

const GOOD: &str = r#"
[database]
url = "postgres://mailops@127.0.0.1:5432/mailops"
[lmtp]
listen = "unix:/run/mailops/lmtp.sock"
max_message_size = 26214400
[inbound]
authorized_domains = ["Mon.Example.com"]
notify_local_part = "notify"
[postfix]
smtpd_listen = "127.0.0.1:2525"
mynetworks = ["127.0.0.0/8", "[::1]/128"]
"#;

/// The problems of a config that must fail, without the lines they are on.
fn unlocated(parsed: Result<Config, Vec<String>>) -> Vec<String> {
    let Err(problems) = parsed else {
        panic!("the config passed its checks");
    };
    problems
        .iter()
        .map(|p| match p.split_once(" (line ") {
            Some((key, rest)) => format!("{key}{}", &rest[rest.find(')').unwrap_or(0) + 1..]),
            None => p.clone(),
        })
        .collect()
}

#[test]
fn good_config_parses_and_normalises() {
    let c = Config::parse(GOOD, None).expect("valid");
    assert_eq!(c.inbound.authorized_domains, ["mon.example.com"]);
    assert_eq!(c.lmtp.listen, Listen::Unix("/run/mailops/lmtp.sock".into()));
    assert_eq!(c.postfix.smtpd_listen.port(), 2525);
    assert_eq!(c.myhostname(), "mon.example.com");
}

#[test]
fn the_instance_has_directories_of_its_own() {
    let c = Config::parse(GOOD, None).expect("valid");
    assert_eq!(
        (c.postfix.queue_directory, c.postfix.data_directory),
        (
            PathBuf::from("/var/spool/postfix-mailops"),
            PathBuf::from("/var/lib/postfix-mailops")
        )
    );
    let text = format!(
        "{GOOD}queue_directory = \"/var/spool/postfix/\"\ndata_directory = \"/var/lib//postfix\"\n"
    );
    assert_eq!(
        unlocated(Config::parse(&text, None)),
        [
            "postfix.queue_directory: /var/spool/postfix/ is the system Postfix's; this instance needs its own (the default is /var/spool/postfix-mailops)",
            "postfix.data_directory: /var/lib//postfix is the system Postfix's; this instance needs its own (the default is /var/lib/postfix-mailops)",
        ]
    );
}

#[test]
fn environment_url_wins() {
    let c = Config::parse(GOOD, Some("postgres://other/db".into())).expect("valid");
    assert_eq!(c.database.url, "postgres://other/db");
}

#[test]
fn the_shipped_example_is_valid() {
    let text = include_str!("../mailops.example.toml");
    Config::parse(text, None).expect("example config is valid");
}

#[test]
fn every_problem_is_reported_with_its_key() {
    let text = r#"
[database]
url = "postgres://x/y"
colour = "blue"
[lmtp]
listen = "tcp:nowhere"
[inbound]
authorized_domains = ["localhost", "a-very-long-label-that-goes-on.and-on-and-on-and-on-and-on.example.com"]
notify_local_part = "no tify"
lmtp_extra = 1
[postfix]
mynetworks = ["10.0.0.0/40"]
tls_cert_file = "/etc/cert.pem"
[extra]
"#;
    let problems = Config::parse(text, None).unwrap_err();
    let joined = problems.join("\n");
    for needle in [
        "database.colour (line 4): unknown key",
        "inbound.lmtp_extra (line 10): unknown key",
        "lmtp.listen (line 6): ",
        "extra (line 14): unknown section",
    ] {
        assert!(
            joined.contains(needle),
            "{needle:?} missing from:\n{joined}"
        );
    }

    // With the unknown keys and the wrong type fixed, the value checks report alone.
    let text = text
        .replace("colour = \"blue\"\n", "")
        .replace("lmtp_extra = 1\n", "")
        .replace("tcp:nowhere", "127.0.0.1:2424")
        .replace("[extra]\n", "");
    let problems = unlocated(Config::parse(&text, None));
    assert_eq!(
        problems,
        [
            "inbound.authorized_domains: \"localhost\" is not fully qualified (no dot)",
            "inbound.authorized_domains: \"a-very-long-label-that-goes-on.and-on-and-on-and-on-and-on.example.com\" is longer than 64 characters",
            "inbound.notify_local_part: \"no tify\" is not a valid local part",
            "postfix.mynetworks: \"10.0.0.0/40\" has a prefix longer than the address",
            "postfix.tls_key_file: needed with postfix.tls_cert_file",
        ]
    );
}

#[test]
fn wrong_types_and_wrong_values_are_reported_in_one_pass() {
    let text = r#"[database]
url = "postgres://mailops@127.0.0.1/mailops"
pool_size = "many"
[lmtp]
listen = "127.0.0.1:2424"
max_message_size = "25MB"
[inbound]
authorized_domains = ["bad domain!", 7, "localhost", "a..example.com", "-a.example.com"]
[postfix]
mynetworks = ["10.0.0.0/40"]
"#;
    assert_eq!(
        Config::parse(text, None).unwrap_err(),
        [
            "database.pool_size (line 3): invalid type: string \"many\", expected a whole number",
            "lmtp.max_message_size (line 6): invalid type: string \"25MB\", expected a whole number",
            "inbound.authorized_domains (line 8): invalid type: integer `7`, expected a string",
            "inbound.authorized_domains (line 8): \"bad domain!\" has ' ', which a domain name cannot have (letters, digits, '-' and '.' only)",
            "inbound.authorized_domains (line 8): \"localhost\" is not fully qualified (no dot)",
            "inbound.authorized_domains (line 8): \"a..example.com\" has an empty label (two dots in a row, or a dot at an end)",
            "inbound.authorized_domains (line 8): \"-a.example.com\" has a label that starts or ends with '-'",
            "postfix.mynetworks (line 10): \"10.0.0.0/40\" has a prefix longer than the address",
        ]
    );
    // A required key of the wrong type is reported once, not again as missing.
    let text = text.replace("url = \"postgres://mailops@127.0.0.1/mailops\"", "url = 5");
    let problems = Config::parse(&text, None).unwrap_err();
    assert!(
        problems.contains(
            &"database.url (line 2): invalid type: integer `5`, expected a string".into()
        ),
        "{problems:?}"
    );
    assert!(
        !problems.iter().any(|p| p.contains("required")),
        "{problems:?}"
    );
}

#[test]
fn retention_is_optional_and_checked() {
    let c = Config::parse(GOOD, None).expect("valid");
    assert_eq!((c.retention.raw_days, c.retention.rows_days), (None, None));
    let text = format!("{GOOD}[retention]\nraw_days = 90\nrows_days = 400\n");
    let c = Config::parse(&text, None).expect("valid");
    assert_eq!(
        Retention::age(c.retention.raw_days),
        Some(std::time::Duration::from_secs(90 * 86_400))
    );
    let text = format!("{GOOD}[retention]\nraw_days = 0\nrows_days = 30\n");
    assert_eq!(
        unlocated(Config::parse(&text, None)),
        ["retention.raw_days: must be at least 1 (leave it out to keep for ever)"]
    );
    let text = format!("{GOOD}[retention]\nraw_days = 60\nrows_days = 30\n");
    assert_eq!(
        unlocated(Config::parse(&text, None)),
        ["retention.raw_days: 60 is longer than retention.rows_days (30): a raw message goes with its row"]
    );
}

#[test]
fn inbound_auth_has_defaults_and_is_checked() {
    let c = Config::parse(GOOD, None).expect("valid");
    let auth = &c.inbound.auth;
    assert!(!auth.verify && !auth.notify_unverified);
    assert_eq!(auth.trust, [Method::Dmarc, Method::Mynetworks]);
    assert_eq!(auth.unverified_reply, UnverifiedReply::NewRequest);
    let text = format!(
        "{GOOD}[inbound.auth]\nverify = true\ntrust = [\"dkim\", \"spf\"]\n\
         unverified_reply = \"store\"\nnameservers = [\"127.0.0.1:5354\", \"::1\"]\n"
    );
    let c = Config::parse(&text, None).expect("valid");
    assert_eq!(c.inbound.auth.trust, [Method::Dkim, Method::Spf]);
    assert_eq!(c.inbound.auth.unverified_reply, UnverifiedReply::Store);
    let text = format!(
        "{GOOD}[inbound.auth]\ntrust = []\nnameservers = [\"dns.example.com\"]\n\
         verifier_directory = \"run/v\"\n"
    );
    assert_eq!(
        unlocated(Config::parse(&text, None)),
        [
            "inbound.auth.verifier_directory: must be an absolute path",
            "inbound.auth.nameservers: \"dns.example.com\" is not an address or address:port",
            "inbound.auth.trust: at least one of dmarc, dkim, spf, mynetworks is needed",
        ]
    );
    // A wrong item is left out of the list, which then holds nothing.
    let text = format!("{GOOD}[inbound.auth]\ntrust = [\"tls\"]\n");
    assert_eq!(
        unlocated(Config::parse(&text, None)),
        [
            "inbound.auth.trust: unknown variant `tls`, expected one of `dmarc`, `dkim`, `spf`, `mynetworks`",
            "inbound.auth.trust: at least one of dmarc, dkim, spf, mynetworks is needed",
        ]
    );
}

#[test]
fn the_config_file_is_found_where_the_command_line_looks() {
    assert_eq!(
        locate(Some(Path::new("x.toml"))).expect("named"),
        Path::new("x.toml")
    );
    let message = Error::NotFound {
        looked: CONFIG_PLACES.iter().map(PathBuf::from).collect(),
    }
    .to_string();
    assert_eq!(
        message,
        "no config file: none given with -c or MAILOPS_CONFIG, and none at mailops.toml \
         or /etc/mailops/mailops.toml"
    );
}

#[test]
fn outbound_is_optional_and_checked() {
    assert!(Config::parse(GOOD, None).expect("valid").outbound.is_none());
    let text = format!(
        "{GOOD}[outbound]\nfrom_address = \"noreply@mon.example.com\"\n\
         gateway = \"smtp.example.com:587\"\nauth = \"plain\"\ncolour = 1\n"
    );
    let problems = unlocated(Config::parse(&text, None));
    assert_eq!(
        problems,
        [
            "outbound.colour: unknown key",
            "outbound.username: needed with outbound.auth"
        ]
    );
    let text = text.replace("colour = 1\n", "");
    assert_eq!(
        unlocated(Config::parse(&text, None)),
        ["outbound.username: needed with outbound.auth"]
    );
    let text = text.replace("auth = \"plain\"", "encryption = \"smtps\"");
    let o = Config::parse(&text, None)
        .expect("valid")
        .outbound
        .expect("set");
    assert_eq!(o.encryption, Encryption::Smtps);
    assert_eq!(o.timeout_s, 30);
}

#[test]
fn xoauth2_needs_its_oauth2_table_and_nothing_else_has_one() {
    let outbound = format!(
        "{GOOD}[outbound]\nfrom_address = \"noreply@mon.example.com\"\n\
         gateway = \"smtp.example.com:587\"\nusername = \"mailops@example.com\"\n"
    );
    let xoauth2 = format!("{outbound}auth = \"xoauth2\"\n");
    assert_eq!(
        unlocated(Config::parse(&xoauth2, None)),
        ["outbound.oauth2: needed with outbound.auth = \"xoauth2\" \
          (token_url, client_id, refresh_token_file)"]
    );
    // Every missing key by name, and unknown keys as elsewhere.
    let text = format!("{xoauth2}[outbound.oauth2]\nscope = \"x\"\ncolour = 1\n");
    assert_eq!(
        unlocated(Config::parse(&text, None)),
        [
            "outbound.oauth2.colour: unknown key",
            "outbound.oauth2.token_url: needed with outbound.auth = \"xoauth2\"",
            "outbound.oauth2.client_id: needed with outbound.auth = \"xoauth2\"",
            "outbound.oauth2.refresh_token_file: needed with outbound.auth = \"xoauth2\"",
        ]
    );
    let complete = format!(
        "{xoauth2}[outbound.oauth2]\ntoken_url = \"https://login.example.com/token\"\n\
         client_id = \"mailops\"\nrefresh_token_file = \"/etc/mailops/refresh\"\n"
    );
    let o = Config::parse(&complete, None)
        .expect("valid")
        .outbound
        .expect("set");
    assert_eq!(o.auth, Auth::Xoauth2);
    let oauth2 = o.oauth2.expect("oauth2");
    assert_eq!(oauth2.client_secret_file, None);
    assert_eq!(oauth2.scope, None);
    // The table without xoauth2 is a mistake worth reporting.
    let text = complete.replace("auth = \"xoauth2\"", "auth = \"plain\"");
    assert_eq!(
        unlocated(Config::parse(&text, None)),
        ["outbound.oauth2: only used with outbound.auth = \"xoauth2\""]
    );
}

#[test]
fn token_urls_are_https_or_loopback_http() {
    for good in [
        "https://login.example.com/oauth2/v2.0/token",
        "http://127.0.0.1:8080/token",
        "http://localhost/token",
        "http://[::1]:99/token",
    ] {
        assert_eq!(check_token_url(good), Ok(()), "{good}");
    }
    for bad in [
        "http://login.example.com/token",
        "http://10.0.0.1/token",
        "ftp://127.0.0.1/token",
        "login.example.com/token",
    ] {
        assert!(check_token_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn host_and_port() {
    assert_eq!(
        parse_host_port("smtp.example.com"),
        Ok(("smtp.example.com".into(), 25))
    );
    assert_eq!(
        parse_host_port("smtp.example.com:587"),
        Ok(("smtp.example.com".into(), 587))
    );
    assert_eq!(parse_host_port("[::1]:2525"), Ok(("::1".into(), 2525)));
    assert!(parse_host_port("smtp.example.com:0").is_err());
    assert!(parse_host_port("smtp.example.com:x").is_err());
    assert!(parse_host_port("").is_err());
}

#[test]
fn a_non_loopback_listener_needs_its_setting() {
    let listen = |addr: &str, extra: &str| {
        let text = GOOD.replace(
            "listen = \"unix:/run/mailops/lmtp.sock\"",
            &format!("listen = \"{addr}\"\n{extra}"),
        );
        Config::parse(&text, None)
    };
    for loopback in [
        "127.0.0.1:24",
        "127.9.9.9:24",
        "[::1]:24",
        "[::ffff:127.0.0.1]:24",
    ] {
        assert!(listen(loopback, "").is_ok(), "{loopback}");
    }
    for wide in ["0.0.0.0:24", "[::]:24", "192.0.2.7:24", "[2001:db8::7]:24"] {
        let problems = unlocated(listen(wide, ""));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(&format!("lmtp.listen: {wide} is not a loopback address"))
                && problems[0].contains("lmtp.allow_non_loopback = true"),
            "{problems:?}"
        );
        let c = listen(wide, "allow_non_loopback = true").expect("allowed explicitly");
        assert!(c.lmtp.allow_non_loopback);
    }
    // A unix socket is guarded by its mode and group instead.
    assert!(
        !Config::parse(GOOD, None)
            .expect("valid")
            .lmtp
            .allow_non_loopback
    );
}

#[test]
fn database_passwords_are_not_shown() {
    for (url, shown) in [
        (
            "postgres://mailops:s3cret@db.example.com:5432/mailops",
            "postgres://mailops:***@db.example.com:5432/mailops",
        ),
        (
            "postgresql://u:p@ss@h/db?x=1",
            "postgresql://u:***@h/db?x=1",
        ),
        ("postgres://mailops@h/db", "postgres://mailops@h/db"),
        (
            "host=h user=u password=s3cret dbname=d",
            "host=h user=u password=*** dbname=d",
        ),
        (
            "host=h password = 'two words' dbname=d",
            "host=h password = *** dbname=d",
        ),
    ] {
        assert_eq!(redact_password(url), shown, "{url}");
    }
    let text = GOOD.replace("mailops@127", "mailops:s3cret@127");
    let c = Config::parse(&text, None).expect("valid");
    let debug = format!("{c:?}");
    assert!(
        !debug.contains("s3cret") && debug.contains("mailops:***@"),
        "{debug}"
    );
}

#[test]
fn a_syntax_error_names_the_place_not_the_line() {
    let text = "[database]\nurl = \"postgres://mailops:s3cret@db/mailops\n";
    let problems = Config::parse(text, None).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert!(problems[0].starts_with("line 2, column "), "{problems:?}");
    assert!(!problems[0].contains("s3cret"), "{problems:?}");
}

#[test]
fn listen_forms() {
    assert_eq!(
        "127.0.0.1:2424".parse::<Listen>(),
        Ok(Listen::Tcp("127.0.0.1:2424".parse().unwrap()))
    );
    assert!("unix:relative.sock".parse::<Listen>().is_err());
    assert!("localhost".parse::<Listen>().is_err());
}
