//! Unit tests of the token endpoint client's pure parts: answers, errors, form, margins.

use super::*;

const URL: &str = "https://login.example.com/token";

fn secret(s: &str) -> Secret {
    Secret(s.into())
}

#[test]
fn answers_are_read_field_by_field() {
    let ok = |body: &str| parse(URL, 200, body.as_bytes());
    assert_eq!(
        ok(r#"{"access_token":"at1","token_type":"Bearer","expires_in":3599}"#),
        Ok(Grant {
            access_token: secret("at1"),
            expires_in: Some(Duration::from_secs(3599)),
            refresh_token: None,
        })
    );
    assert_eq!(
        ok(
            r#"{"access_token":"at2","token_type":"bearer","expires_in":"60","refresh_token":"rt2"}"#
        ),
        Ok(Grant {
            access_token: secret("at2"),
            expires_in: Some(Duration::from_secs(60)),
            refresh_token: Some(secret("rt2")),
        })
    );
    assert_eq!(
        ok(r#"{"access_token":"at3"}"#).map(|g| g.expires_in),
        Ok(None)
    );
    for (body, why) in [
        (
            "not json access_token=at4",
            "the answer is not a JSON object",
        ),
        (r#"{"token_type":"Bearer"}"#, "no access_token"),
        (r#"{"access_token":""}"#, "no access_token"),
        (
            r#"{"access_token":"at5","token_type":"MAC"}"#,
            "token_type is not Bearer",
        ),
        (
            r#"{"access_token":"at6","expires_in":-1}"#,
            "bad expires_in",
        ),
        (
            r#"{"access_token":"at7","expires_in":"soon"}"#,
            "bad expires_in",
        ),
    ] {
        let e = ok(body).unwrap_err();
        assert_eq!(
            e,
            TokenError::Malformed {
                url: URL.into(),
                why: why.into()
            },
            "{body}"
        );
        let text = e.to_string();
        assert!(
            !["at4", "at5", "at6", "at7"]
                .iter()
                .any(|t| text.contains(t)),
            "{e}"
        );
        assert!(!e.is_permanent());
    }
}

#[test]
fn errors_say_the_status_and_the_oauth_error() {
    let e = parse(
        URL,
        400,
        br#"{"error":"invalid_grant","error_description":"AADSTS70000: the grant\r\nis expired"}"#,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "token endpoint https://login.example.com/token answered HTTP 400: \
         invalid_grant: AADSTS70000: the grant  is expired"
    );
    assert!(e.is_permanent());
    let e = parse(URL, 401, br#"{"error":"invalid_client"}"#).unwrap_err();
    assert!(e.is_permanent(), "{e}");
    for (status, body) in [
        (503, &b"<html>down</html>"[..]),
        (500, br#"{"error":"server_error"}"#),
        (429, br#"{"error":"slow_down"}"#),
        (400, br#"{"error":"temporarily_unavailable"}"#),
    ] {
        let e = parse(URL, status, body).unwrap_err();
        assert!(!e.is_permanent(), "{e}");
        assert!(e.to_string().contains(&format!("HTTP {status}")), "{e}");
    }
    let unreachable = TokenError::Unreachable {
        url: URL.into(),
        why: "connection refused".into(),
    };
    assert!(!unreachable.is_permanent());
}

#[test]
fn the_form_has_the_secret_only_when_there_is_one() {
    let rt = secret("rt");
    assert_eq!(
        form("app", None, &rt, None),
        [
            ("grant_type", "refresh_token"),
            ("client_id", "app"),
            ("refresh_token", "rt")
        ]
    );
    let cs = secret("cs");
    assert_eq!(
        form("app", Some(&cs), &rt, Some("a b")),
        [
            ("grant_type", "refresh_token"),
            ("client_id", "app"),
            ("refresh_token", "rt"),
            ("client_secret", "cs"),
            ("scope", "a b")
        ]
    );
}

#[test]
fn tokens_are_refreshed_a_minute_or_a_tenth_of_their_life_early() {
    let margin = |s| refresh_margin(Duration::from_secs(s)).as_secs_f64();
    assert_eq!(margin(3600), 60.0);
    assert_eq!(margin(600), 60.0);
    assert_eq!(margin(300), 30.0);
    assert_eq!(margin(10), 1.0);
    assert_eq!(margin(0), 0.0);
}

#[test]
fn secrets_do_not_show() {
    let token = Token {
        secret: secret("at-very-secret"),
        expires_in: Duration::from_secs(42),
        refreshed: true,
    };
    assert_eq!(token.to_string(), "refreshed, expires in 42 s");
    assert!(!format!("{token:?}").contains("very-secret"));
}

#[test]
fn a_rotated_token_replaces_the_file_keeping_its_mode() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("mailops-oauth2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("refresh-token");
    std::fs::write(&path, "old\n").expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    replace_file(&path, &secret("new")).expect("replaced");
    assert_eq!(read_secret("k", &path).expect("read"), secret("new"));
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
