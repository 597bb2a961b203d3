//! Probe tokens: `mailops-rt-<probe id>-<20 hex digits of HMAC-SHA-256(key, probe id)>`. Only
//! whoever holds the key (in `roundtrip_key`) can make one, so a token found in a mail is a
//! probe's, and which one, without a lookup.

use std::sync::LazyLock;

use hmac::{Hmac, Mac};
use regex::bytes::Regex;
use sha2::Sha256;

use crate::message::Message;

/// The token pattern, wherever it stands.
static TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"mailops-rt-([0-9]{1,18})-([0-9a-f]{20})").expect("the token regex compiles")
});

/// The key tokens are signed with.
#[derive(Clone)]
pub struct Key(Vec<u8>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A key of these bytes.
    pub fn new(bytes: Vec<u8>) -> Key {
        Key(bytes)
    }

    fn mac(&self, probe_id: i64) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(&probe_id.to_be_bytes());
        crate::hex(&mac.finalize().into_bytes()[..10])
    }

    /// The token of probe `probe_id`.
    pub fn token(&self, probe_id: i64) -> String {
        format!("mailops-rt-{probe_id}-{}", self.mac(probe_id))
    }

    /// The probe id of the first genuine token in `text`.
    pub fn find(&self, text: &[u8]) -> Option<i64> {
        TOKEN.captures_iter(text).find_map(|c| {
            let id: i64 = std::str::from_utf8(&c[1]).ok()?.parse().ok()?;
            (self.mac(id).as_bytes() == &c[2]).then_some(id)
        })
    }

    /// The probe a mail answers: a token in its subject, its body (quoted, or HTML turned into
    /// text), a message it forwards as an attachment, or anywhere in its raw form.
    pub fn find_in(&self, message: &Message, raw: &[u8]) -> Option<i64> {
        [
            message.subject.as_deref().unwrap_or("").as_bytes(),
            message.body.as_bytes(),
            message.forwarded.as_bytes(),
            raw,
        ]
        .into_iter()
        .find_map(|text| self.find(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_found_where_replies_put_them_and_cannot_be_forged() {
        let key = Key::new(vec![7; 32]);
        let token = key.token(42);
        assert!(token.starts_with("mailops-rt-42-"), "{token}");
        assert_eq!(
            key.find(format!("Re: Fwd: probe {token}").as_bytes()),
            Some(42)
        );
        assert_eq!(key.find(format!("> > {token}\n").as_bytes()), Some(42));
        // Another id with this mac, or this id under another key, is no token.
        let forged = token.replace("-42-", "-43-");
        assert_eq!(key.find(forged.as_bytes()), None);
        assert_eq!(Key::new(vec![8; 32]).find(token.as_bytes()), None);

        let html = format!(
            "From: a@example.com\r\nContent-Type: text/html\r\n\r\n<p>probe <b>{token}</b></p>\r\n"
        );
        let m = Message::parse(html.as_bytes());
        assert_eq!(key.find_in(&m, b""), Some(42));

        let forward = format!(
            "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
             Content-Type: text/plain\r\n\r\nSee attached.\r\n--b\r\nContent-Type: message/rfc822\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
            base64_of(&format!("Subject: probe {token}\r\n\r\nbody\r\n"))
        );
        let m = Message::parse(forward.as_bytes());
        assert_eq!(key.find_in(&m, forward.as_bytes()), Some(42));
    }

    fn base64_of(s: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    }
}
