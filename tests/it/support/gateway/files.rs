//! The gateway's certificate and its Postfix configuration, written by hand: it stands for a
//! customer's relay, not for mailops's own Postfix.

use std::process::Command;

use super::{id, read, set_mode, write, Gateway};
use crate::support::postfix::{describe, run};

impl Gateway {
    pub(super) fn write_certificate(&self) {
        let config = self.dir.join("openssl.cnf");
        // CA:FALSE and serverAuth: rustls (lettre's TLS) refuses a CA certificate as a
        // server's own, while a self-signed leaf given as a root is fine to both it and
        // OpenSSL.
        write(
            &config,
            r#"[req]
distinguished_name = dn
prompt = no
x509_extensions = leaf
[dn]
CN = localhost
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
"#,
        );
        let key = self.dir.join("key.pem");
        let out = run(Command::new("openssl")
            .args(["req", "-x509", "-config"])
            .arg(&config)
            .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
            .args(["-nodes", "-days", "1", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&self.ca_cert));
        assert!(out.status.success(), "openssl req: {}", describe(&out));
        // smtpd_tls_chain_files: the key, then its certificate, in one file.
        let chain = [read(&key), read(&self.ca_cert)].concat();
        write(
            &self.dir.join("chain.pem"),
            &String::from_utf8_lossy(&chain),
        );
        set_mode(&self.dir.join("chain.pem"), 0o600);
    }

    pub(super) fn configure_postfix(&self) {
        let queue = self.dir.join("queue");
        // Postfix chdirs into the queue first, so it must exist; it creates the data
        // directory itself (owned by postfix).
        std::fs::create_dir_all(&queue)
            .unwrap_or_else(|e| panic!("creating {}: {e}", queue.display()));
        std::fs::create_dir_all(&self.config_dir)
            .unwrap_or_else(|e| panic!("creating {}: {e}", self.config_dir.display()));
        // virtual(8) delivers as nobody, creating the Maildir below this directory.
        let mail = self
            .mailbox
            .parent()
            .expect("the Maildir is dir/mail/inbox");
        std::fs::create_dir_all(mail)
            .unwrap_or_else(|e| panic!("creating {}: {e}", mail.display()));
        let (uid, gid) = (id("-u", "nobody"), id("-g", "nobody"));
        std::os::unix::fs::chown(mail, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", mail.display()));
        let dir = self.dir.display();
        write(
            &self.config_dir.join("main.cf"),
            &format!(
                r#"# The test gateway: relays for authenticated clients, delivers every domain into
# one Maildir. Hand-written: it stands for a customer's relay, not for mailops's own Postfix.
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
myhostname = gateway.mailops.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
syslog_name = postfix-gateway
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}/maillog
# No DNS on a test machine: clients are logged as unknown[127.0.0.1].
smtpd_peername_lookup = no
mynetworks = 127.0.0.0/8

# Every domain is a virtual mailbox domain (a static: table matches any name), every
# address a mailbox, and every mailbox the same Maildir: {mailbox}/
mydestination =
virtual_mailbox_domains = static:all
virtual_mailbox_base = {dir}/mail
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
# Nothing is relayed off this machine, whatever the configuration above.
relayhost =
relay_domains =
default_transport = error:no outside mail in tests
local_transport = error:no local delivery in tests
alias_maps =
alias_database =
# The mailbox holds what clients sent, never Postfix's own notices.
notify_classes =

# Relaying: per listener in master.cf; nothing by default.
smtpd_relay_restrictions = reject
smtpd_sasl_type = dovecot
smtpd_sasl_path = {sasl}
# The Received header names the authenticated user, and the TLS version.
smtpd_sasl_authenticated_header = yes
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
smtpd_tls_chain_files = {dir}/chain.pem
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_mandatory_protocols = >=TLSv1.2
"#,
                mailbox = self.mailbox.display(),
                sasl = self.sasl_socket().display(),
            ),
        );
        self.write_master_cf();
    }

    pub(super) fn write_master_cf(&self) {
        // Only the services this gateway needs: no smtp, relay, lmtp, local or pipe
        // service exists to carry mail anywhere but the Maildir.
        write(
            &self.config_dir.join("master.cf"),
            &format!(
                r#"# service type  private unpriv  chroot  wakeup  maxproc command + args
{submission} inet n - n - - smtpd
  -o syslog_name=postfix-gateway/submission
  -o smtpd_tls_security_level=may
  -o smtpd_tls_auth_only=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
{smtps} inet n - n - - smtpd
  -o syslog_name=postfix-gateway/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
{plain} inet n - n - - smtpd
  -o syslog_name=postfix-gateway/plain
  -o smtpd_tls_security_level=none
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
{open} inet n - n - - smtpd
  -o syslog_name=postfix-gateway/open
  -o smtpd_tls_security_level=none
  -o smtpd_sasl_auth_enable=no
  -o smtpd_relay_restrictions=permit_mynetworks,reject
{held} inet n - n - - smtpd
  -o syslog_name=postfix-gateway/held
  -o smtpd_tls_security_level=none
  -o smtpd_sasl_auth_enable=no
  -o smtpd_relay_restrictions=permit_mynetworks,reject
  -o smtpd_end_of_data_restrictions=check_policy_service,inet:{held_policy}
pickup    unix  n - n 60    1 pickup
cleanup   unix  n - n -     0 cleanup
qmgr      unix  n - n 300   1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -     - trivial-rewrite
bounce    unix  - - n -     0 bounce
defer     unix  - - n -     0 bounce
trace     unix  - - n -     0 bounce
verify    unix  - - n -     1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -     - proxymap
showq     unix  n - n -     - showq
error     unix  - - n -     - error
retry     unix  - - n -     - error
discard   unix  - - n -     - discard
virtual   unix  - n n -     - virtual
anvil     unix  - - n -     1 anvil
scache    unix  - - n -     1 scache
postlog   unix-dgram n - n - 1 postlogd
"#,
                submission = self.submission,
                smtps = self.smtps,
                plain = self.plain,
                open = self.open,
                held = self.held,
                held_policy = self.held_policy,
            ),
        );
    }
}
