//! `[database] url` as pgsql_table(5) settings for Postfix's recipient lookup.

use tokio_postgres::config::Host;

use crate::store::connect::{SslMode, Target};

/// PostgreSQL's port when a URL names none.
const DEFAULT_PORT: u16 = 5432;

/// The connection lines of pgsql-recipients.cf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Connection {
    /// `hosts`: `inet:host:port` / `unix:/dir`, or `postgresql://` URIs when those can't say it.
    pub hosts: Vec<String>,
    /// `user`.
    pub user: String,
    /// `password`.
    pub password: String,
    /// `dbname`.
    pub dbname: String,
}

/// Translates a libpq-style URL or `key=value` string into pgsql_table(5) settings.
///
/// Postfix's historical host forms cannot name an IPv6 address, a socket directory on a port
/// other than 5432, an sslmode or sslrootcert, and its `password =` line loses surrounding
/// whitespace. Then each host becomes a `postgresql://` URI that carries everything, since
/// libpq ignores the user, password and dbname lines for a URI host (they stay, dbname is
/// required).
pub(super) fn connection(url: &str) -> Result<Connection, String> {
    let target = Target::parse(url)?;
    let pg = &target.pg;
    let user = pg.get_user().unwrap_or("").to_owned();
    let password = match pg.get_password() {
        Some(p) => String::from_utf8(p.to_vec()).map_err(|_| "has a password that is not UTF-8")?,
        None => String::new(),
    };
    // libpq's rule: no database name means the user's name.
    let dbname = match pg.get_dbname() {
        Some(db) => db.to_owned(),
        None if !user.is_empty() => user.clone(),
        None => return Err("names neither a database nor a user".into()),
    };
    for (what, value) in [
        ("user", &user),
        ("password", &password),
        ("database", &dbname),
    ] {
        if value.chars().any(char::is_control) {
            return Err(format!(
                "has a {what} with control characters, which pgsql_table(5) cannot hold"
            ));
        }
    }

    // hostaddr is where libpq connects; host is then only the name TLS checks.
    let hostaddrs = pg.get_hostaddrs();
    let check_name = target.ssl_mode == SslMode::VerifyFull && !hostaddrs.is_empty();
    let hosts: Vec<Host> = if hostaddrs.is_empty() || check_name {
        pg.get_hosts().to_vec()
    } else {
        hostaddrs
            .iter()
            .map(|ip| Host::Tcp(ip.to_string()))
            .collect()
    };
    if hosts.is_empty() {
        return Err("names no host".into());
    }
    let ports = pg.get_ports();
    if ports.len() > 1 && ports.len() != hosts.len() {
        return Err("names more than one port, but not one per host".into());
    }
    let port_of = |i: usize| {
        ports
            .get(i)
            .or(ports.first())
            .copied()
            .unwrap_or(DEFAULT_PORT)
    };
    // libpq's own settings, as the URI's query; prefer is libpq's default.
    let mut tls = Vec::new();
    if target.ssl_mode != SslMode::Prefer {
        tls.push(format!("sslmode={}", target.ssl_mode.as_str()));
    }
    if let Some(path) = &target.root_cert {
        tls.push(format!("sslrootcert={}", encode(&path.to_string_lossy())));
    }

    let plain = |s: &str| !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || c == ',');
    // A main.cf-style line loses the whitespace around its value.
    let trimmed = [&user, &password, &dbname]
        .iter()
        .all(|v| v.trim() == v.as_str());
    let historical = tls.is_empty()
        && trimmed
        && hosts.iter().enumerate().all(|(i, host)| match host {
            Host::Tcp(name) => plain(name) && !name.contains(':'),
            Host::Unix(dir) => port_of(i) == DEFAULT_PORT && dir.to_str().is_some_and(plain),
        });

    let hosts = hosts
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = port_of(i);
            if historical {
                return match host {
                    Host::Tcp(name) => format!("inet:{name}:{port}"),
                    Host::Unix(dir) => format!("unix:{}", dir.display()),
                };
            }
            let host = match host {
                Host::Tcp(name) if name.contains(':') => format!("[{name}]:{port}"),
                Host::Tcp(name) => format!("{}:{port}", encode(name)),
                Host::Unix(dir) => format!("{}:{port}", encode(&dir.to_string_lossy())),
            };
            let userinfo = match (user.is_empty(), password.is_empty()) {
                (true, true) => String::new(),
                (_, true) => format!("{}@", encode(&user)),
                _ => format!("{}:{}@", encode(&user), encode(&password)),
            };
            let mut query = tls.clone();
            if check_name {
                // verify-full checks the name while connecting to the address.
                query.insert(0, format!("hostaddr={}", hostaddrs[i]));
            }
            let query = if query.is_empty() {
                String::new()
            } else {
                format!("?{}", query.join("&"))
            };
            format!("postgresql://{userinfo}{host}/{}{query}", encode(&dbname))
        })
        .collect();
    Ok(Connection {
        hosts,
        user,
        password,
        dbname,
    })
}

/// Percent-encodes all but RFC 3986's unreserved characters, for a URI component.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(url: &str) -> Connection {
        connection(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    fn expect(hosts: &[&str], user: &str, password: &str, dbname: &str) -> Connection {
        Connection {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            user: user.into(),
            password: password.into(),
            dbname: dbname.into(),
        }
    }

    #[test]
    fn pgsql_settings_from_urls() {
        for (url, want) in [
            (
                "postgres://mailops@127.0.0.1:54329/mailops",
                expect(&["inet:127.0.0.1:54329"], "mailops", "", "mailops"),
            ),
            // The password is percent-decoded; `$`, `#` and inner spaces are literal in
            // pgsql_table(5) files (no parameter expansion, no trailing comments).
            (
                "postgresql://mail%40ops:p%40ss%24w%23rd%20%3Ax%2C%27@db.example.com/mail",
                expect(
                    &["inet:db.example.com:5432"],
                    "mail@ops",
                    "p@ss$w#rd :x,'",
                    "mail",
                ),
            ),
            (
                "postgres://u@db1.example.com:5433,db2.example.com:5434/d",
                expect(
                    &["inet:db1.example.com:5433", "inet:db2.example.com:5434"],
                    "u",
                    "",
                    "d",
                ),
            ),
            // No database: libpq uses the user's name.
            (
                "postgres://mailops@localhost",
                expect(&["inet:localhost:5432"], "mailops", "", "mailops"),
            ),
            // A socket directory on the default port: Postfix's unix: form.
            (
                "postgresql:///mailops?host=/var/run/postgresql&user=mailops",
                expect(&["unix:/var/run/postgresql"], "mailops", "", "mailops"),
            ),
            // Anything else Postfix's host forms cannot say goes into a URI.
            (
                "postgresql:///mailops?host=/srv/app/var/pg/run&port=54329&user=mailops",
                expect(
                    &["postgresql://mailops@%2Fsrv%2Fapp%2Fvar%2Fpg%2Frun:54329/mailops"],
                    "mailops",
                    "",
                    "mailops",
                ),
            ),
            (
                "postgres://u:pw@[::1]:5432/d",
                expect(&["postgresql://u:pw@[::1]:5432/d"], "u", "pw", "d"),
            ),
            (
                "postgres://u:%20pw%20@db.example.com/d?sslmode=require",
                expect(
                    &["postgresql://u:%20pw%20@db.example.com:5432/d?sslmode=require"],
                    "u",
                    " pw ",
                    "d",
                ),
            ),
        ] {
            assert_eq!(conn(url), want, "{url}");
        }
    }

    #[test]
    fn pgsql_settings_from_key_value_strings() {
        assert_eq!(
            conn("host=/var/run/postgresql user=mailops password='it\\'s a #$ecret' dbname=ops"),
            expect(
                &["unix:/var/run/postgresql"],
                "mailops",
                "it's a #$ecret",
                "ops"
            )
        );
        assert_eq!(
            conn("host=db.example.com hostaddr=192.0.2.7 port=6432 user=m dbname=m"),
            expect(&["inet:192.0.2.7:6432"], "m", "", "m")
        );
    }

    #[test]
    fn tls_settings_reach_libpq_through_the_uri() {
        // Any readable CA file will do: the system's bundle, as for a public CA.
        let ca = "/etc/ssl/certs/ca-certificates.crt";
        let query = "sslmode=verify-full&sslrootcert=%2Fetc%2Fssl%2Fcerts%2Fca-certificates.crt";
        assert_eq!(
            conn(&format!(
                "postgres://u@db.example.com/d?sslmode=verify-full&sslrootcert={ca}"
            )),
            expect(
                &[&format!("postgresql://u@db.example.com:5432/d?{query}")],
                "u",
                "",
                "d"
            )
        );
        // verify-full checks the host's name while connecting to its hostaddr.
        assert_eq!(
            conn(&format!(
                "host=db.example.com hostaddr=192.0.2.7 port=6432 user=m dbname=m \
                 sslmode=verify-full sslrootcert={ca}"
            )),
            expect(
                &[&format!(
                    "postgresql://m@db.example.com:6432/m?hostaddr=192.0.2.7&{query}"
                )],
                "m",
                "",
                "m"
            )
        );
    }

    #[test]
    fn pgsql_settings_postfix_cannot_use_are_refused() {
        for (url, why) in [
            ("postgres:///d", "names no host"),
            (
                "postgres://localhost",
                "names neither a database nor a user",
            ),
            ("postgres://u:a%0Ab@localhost/d", "control characters"),
            ("not a url", "not a PostgreSQL connection string"),
            ("postgres://u@h/d?sslmode=verify-full", "needs sslrootcert"),
        ] {
            let err = connection(url).expect_err(url);
            assert!(err.contains(why), "{url}: {err}");
        }
    }
}
