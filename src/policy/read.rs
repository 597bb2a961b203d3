//! Reading a policy file: its TOML table into entries, each entry on its own so that every
//! problem is reported at once, and the files it includes (`include = ["pack:nagios",
//! "site.toml"]`) merged in before its own entries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::check::{Kind, Labels, OriginatorKey, Problems};
use super::file::{
    DeviceEntry, Entries, EventPolicyEntry, ExpectEntry, OriginatorEntry, PolicyFile, QueueEntry,
    RoundtripEntry, TicketPolicyEntry, TicketTemplateEntry, UserEntry,
};
use super::packs;

/// The top-level key that names the files a policy file includes.
const INCLUDE: &str = "include";

impl PolicyFile {
    /// Parses and checks policy file text; on failure, every problem found, each naming its
    /// entry. Of `include`, only shipped packs (`pack:<name>`) can be read: a path needs the
    /// file's own place ([`PolicyFile::read`]). References to devices and event policies are
    /// resolved later, by `apply` (against the file and the database) or
    /// [`PolicyFile::to_model`] (against the file alone).
    pub fn parse(text: &str) -> Result<PolicyFile, Vec<String>> {
        Reader::default().parse(text, None)
    }

    /// Reads, parses and checks the policy file at `path` and the files it includes (paths
    /// relative to the file that names them, or `pack:<name>`).
    pub fn read(path: &Path) -> Result<PolicyFile, Vec<String>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![format!("cannot read {}: {e}", path.display())])?;
        let mut reader = Reader::default();
        reader.open.push(path.display().to_string());
        reader.parse(&text, path.parent())
    }
}

/// The files being read, outermost first, to refuse an include cycle.
#[derive(Default)]
struct Reader {
    open: Vec<String>,
}

impl Reader {
    /// `text`, its includes read from `dir` (none given: only packs), merged before its entries.
    fn parse(&mut self, text: &str, dir: Option<&Path>) -> Result<PolicyFile, Vec<String>> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| vec![e.to_string().trim_end().to_owned()])?;
        let mut problems = Vec::new();
        let mut included = Vec::new();
        for name in includes(&mut table).unwrap_or_else(|why| {
            problems.push(why);
            Vec::new()
        }) {
            match self.include(&name, dir) {
                Ok(file) => included.push((name, file)),
                Err(why) => {
                    problems.extend(why.into_iter().map(|p| format!("include {name:?}: {p}")))
                }
            }
        }
        let own = entries(table);
        match own {
            Ok(own) if problems.is_empty() => merge(included, own),
            Ok(_) => Err(problems),
            Err(own) => {
                problems.extend(own);
                Err(problems)
            }
        }
    }

    /// The file an `include` entry names: a shipped pack, or a path relative to `dir`.
    fn include(&mut self, name: &str, dir: Option<&Path>) -> Result<PolicyFile, Vec<String>> {
        let (label, text, dir) = match name.strip_prefix(packs::PREFIX) {
            Some(pack) => {
                let text = packs::text(pack).ok_or_else(|| {
                    vec![format!(
                        "no such pack (the packs are {})",
                        packs::names().join(", ")
                    )]
                })?;
                (name.to_owned(), text.to_owned(), None)
            }
            None => {
                let Some(dir) = dir else {
                    return Err(vec![
                        "a path can only be included by a policy file read from disk (or write pack:<name>)"
                            .into(),
                    ]);
                };
                let path: PathBuf = dir.join(name);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| vec![format!("cannot read {}: {e}", path.display())])?;
                let dir = path.parent().map(Path::to_path_buf);
                (path.display().to_string(), text, dir)
            }
        };
        if self.open.contains(&label) {
            return Err(vec![format!(
                "includes itself: {} -> {label}",
                self.open.join(" -> ")
            )]);
        }
        self.open.push(label);
        let file = self.parse(&text, dir.as_deref());
        self.open.pop();
        file
    }
}

/// Takes `include` out of `table`: a list of names.
fn includes(table: &mut toml::Table) -> Result<Vec<String>, String> {
    match table.remove(INCLUDE) {
        None => Ok(Vec::new()),
        Some(toml::Value::Array(names)) => names
            .into_iter()
            .map(|n| match n {
                toml::Value::String(name) if !name.trim().is_empty() => Ok(name),
                other => Err(format!(
                    "{INCLUDE}: {other} is not a file name or pack:<name>"
                )),
            })
            .collect(),
        Some(other) => Err(format!(
            "{INCLUDE}: must be a list of file names or pack:<name>, not {other}"
        )),
    }
}

/// The entries of one file's own table, each checked.
fn entries(mut table: toml::Table) -> Result<PolicyFile, Vec<String>> {
    let mut problems = Problems::default();
    let mut labels = Labels::default();
    let p = &mut problems;
    let l = &mut labels;
    let entries = Entries {
        devices: array(&mut table, p, l),
        originators: array(&mut table, p, l),
        event_policies: array(&mut table, p, l),
        users: array(&mut table, p, l),
        queues: array(&mut table, p, l),
        ticket_templates: array(&mut table, p, l),
        ticket_policies: array(&mut table, p, l),
        roundtrips: array(&mut table, p, l),
        expects: array(&mut table, p, l),
    };
    for (key, value) in &table {
        if value.is_array() {
            let known: Vec<String> = Kind::ALL
                .iter()
                .map(|k| format!("[[{}]]", k.key()))
                .collect();
            problems.file(format!(
                "[[{key}]]: unknown array (expected {})",
                known.join(", ")
            ));
        } else {
            problems.file(format!("{key}: unknown key"));
        }
    }
    entries.check(&mut problems);
    if !problems.is_empty() {
        return Err(problems.finish(&mut labels));
    }
    Ok(entries.into_file())
}

/// The included files' entries, in order, then `own`'s: an entry of `own` replaces an included
/// one with the same key where it stands; two included files may not declare the same key.
fn merge(included: Vec<(String, PolicyFile)>, own: PolicyFile) -> Result<PolicyFile, Vec<String>> {
    if included.is_empty() {
        return Ok(own);
    }
    let mut merged = Merged::default();
    for (name, file) in included {
        merged.add(&name, file, false);
    }
    merged.add("", own, true);
    if !merged.problems.is_empty() {
        return Err(merged.problems);
    }
    let file = merged.file;
    // Checked again as a whole: each file was valid on its own.
    let problems = file.check();
    if problems.is_empty() {
        Ok(file)
    } else {
        Err(problems)
    }
}

/// Files merged so far, with where each key came from.
#[derive(Default)]
struct Merged {
    file: PolicyFile,
    /// (kind, key) to (index among the entries of its kind, the include it came from).
    seen: HashMap<(Kind, String), (usize, String)>,
    problems: Vec<String>,
}

impl Merged {
    /// Adds `file`'s entries, from `source`; `own`: they replace included ones with the same
    /// key where those stand.
    fn add(&mut self, source: &str, file: PolicyFile, own: bool) {
        let mut to = Placing {
            seen: &mut self.seen,
            problems: &mut self.problems,
            source,
            own,
        };
        let f = &mut self.file;
        to.place(&mut f.devices, file.devices, Kind::Device, |e| &e.name);
        to.place_by(
            &mut f.originators,
            file.originators,
            Kind::Originator,
            |e| OriginatorKey::of(e.name.as_deref(), &e.address).to_string(),
        );
        to.place(
            &mut f.event_policies,
            file.event_policies,
            Kind::EventPolicy,
            |e| &e.name,
        );
        to.place(&mut f.users, file.users, Kind::User, |e| &e.email);
        to.place(&mut f.queues, file.queues, Kind::Queue, |e| &e.name);
        to.place(
            &mut f.ticket_templates,
            file.ticket_templates,
            Kind::TicketTemplate,
            |e| &e.name,
        );
        to.place(
            &mut f.ticket_policies,
            file.ticket_policies,
            Kind::TicketPolicy,
            |e| &e.name,
        );
        to.place(&mut f.roundtrips, file.roundtrips, Kind::Roundtrip, |e| {
            &e.name
        });
        to.place(&mut f.expects, file.expects, Kind::Expect, |e| &e.name);
    }
}

/// Where the entries of one file go.
struct Placing<'a> {
    seen: &'a mut HashMap<(Kind, String), (usize, String)>,
    problems: &'a mut Vec<String>,
    source: &'a str,
    own: bool,
}

impl Placing<'_> {
    /// [`Placing::place_by`] the kind's key field, compared as the kind compares it.
    fn place<T>(&mut self, into: &mut Vec<T>, entries: Vec<T>, kind: Kind, key: fn(&T) -> &String) {
        self.place_by(into, entries, kind, |e| kind.fold(key(e)));
    }

    /// Appends `entries` to `into`; one whose key is there already replaces that entry when
    /// the including file's own, else it is a clash between two includes.
    fn place_by<T>(
        &mut self,
        into: &mut Vec<T>,
        entries: Vec<T>,
        kind: Kind,
        key: impl Fn(&T) -> String,
    ) {
        for entry in entries {
            let key = (kind, key(&entry));
            match self.seen.get(&key) {
                Some((index, _)) if self.own => into[*index] = entry,
                Some((_, first)) => self.problems.push(format!(
                    "include {:?}: {} {:?} is also in {first:?} (only the including file may replace an included entry)",
                    self.source,
                    kind.key(),
                    key.1
                )),
                None => {
                    self.seen.insert(key, (into.len(), self.source.to_owned()));
                    into.push(entry);
                }
            }
        }
    }
}

/// Takes the array `kind` out of `table` and deserializes each entry on its own, so that one
/// bad entry does not hide the problems of the others.
fn array<T: Entry>(
    table: &mut toml::Table,
    problems: &mut Problems,
    labels: &mut Labels,
) -> Vec<(usize, T)> {
    let kind = T::KIND;
    let values = match table.remove(kind.key()) {
        None => return Vec::new(),
        Some(toml::Value::Array(values)) => values,
        Some(_) => {
            let name = kind.key();
            problems.file(format!(
                "{name}: must be an array of tables, written [[{name}]]"
            ));
            return Vec::new();
        }
    };
    let keys: Vec<Option<&str>> = values
        .iter()
        .map(|v| {
            kind.label_fields()
                .iter()
                .find_map(|field| v.get(field).and_then(toml::Value::as_str))
        })
        .collect();
    labels.add(kind, &keys);
    values
        .iter()
        .enumerate()
        .filter_map(|(index, value)| Some((index, entry(value, index, problems)?)))
        .collect()
}

/// An entry type: for each required key, a stand-in value that deserializes and raises no
/// problem in the checks of other keys, so the rest of a broken entry can still be checked.
pub(crate) trait Entry: DeserializeOwned {
    /// Which array it is in.
    const KIND: Kind;
    /// (key, stand-in) for every required key.
    const STAND_INS: &'static [(&'static str, &'static str)];
}

impl Entry for DeviceEntry {
    const KIND: Kind = Kind::Device;
    const STAND_INS: &'static [(&'static str, &'static str)] = &[("name", "")];
}

impl Entry for OriginatorEntry {
    const KIND: Kind = Kind::Originator;
    const STAND_INS: &'static [(&'static str, &'static str)] = &[
        ("address", ""),
        ("regex_type", "subject"),
        ("pattern_type", "classic"),
        ("pattern", ""),
        ("alignment", "discard"),
    ];
}

impl Entry for EventPolicyEntry {
    const KIND: Kind = Kind::EventPolicy;
    const STAND_INS: &'static [(&'static str, &'static str)] =
        &[("name", ""), ("match_logic", "text"), ("first_match", "")];
}

impl Entry for UserEntry {
    const KIND: Kind = Kind::User;
    const STAND_INS: &'static [(&'static str, &'static str)] = &[("email", "")];
}

impl Entry for QueueEntry {
    const KIND: Kind = Kind::Queue;
    const STAND_INS: &'static [(&'static str, &'static str)] = &[("name", "")];
}

impl Entry for TicketTemplateEntry {
    const KIND: Kind = Kind::TicketTemplate;
    const STAND_INS: &'static [(&'static str, &'static str)] =
        &[("name", ""), ("severity", "notice")];
}

impl Entry for TicketPolicyEntry {
    const KIND: Kind = Kind::TicketPolicy;
    const STAND_INS: &'static [(&'static str, &'static str)] = &[
        ("name", ""),
        ("destination", ""),
        ("reply_address", ""),
        ("template", ""),
        ("access", "open"),
    ];
}

impl Entry for RoundtripEntry {
    const KIND: Kind = Kind::Roundtrip;
    const STAND_INS: &'static [(&'static str, &'static str)] =
        &[("name", ""), ("device", ""), ("send_to", ""), ("from", "")];
}

impl Entry for ExpectEntry {
    const KIND: Kind = Kind::Expect;
    const STAND_INS: &'static [(&'static str, &'static str)] =
        &[("name", ""), ("device", ""), ("severity", "notice")];
}

/// Deserializes one entry, reporting every unknown key, every missing key and every value of
/// the wrong type or spelling: each bad or missing key is reported, replaced by its stand-in
/// (or removed when optional), and the entry deserialized again; further problems with that
/// key are then not reported.
fn entry<T: Entry>(value: &toml::Value, index: usize, problems: &mut Problems) -> Option<T> {
    let kind = T::KIND;
    let Some(table) = value.as_table() else {
        problems.entry(kind, index, "must be a table");
        return None;
    };
    let mut table = table.clone();
    let mut replaced: Vec<String> = Vec::new();
    loop {
        let mut unknown = Vec::new();
        let result = serde_ignored::deserialize(toml::Value::Table(table.clone()), |path| {
            unknown.push(path.to_string())
        });
        let error = match result {
            Ok(value) => {
                for key in unknown {
                    problems.entry(kind, index, format!("{key}: unknown key"));
                }
                return Some(value);
            }
            Err(e) => e.to_string(),
        };
        let (message, key) = split_error(&error);
        let field = match (key, missing_field(message)) {
            (Some(key), _) if table.contains_key(key) && !replaced.iter().any(|r| r == key) => {
                problems.entry(kind, index, format!("{key}: {message}"));
                key
            }
            (None, Some(field)) if !replaced.iter().any(|r| r == field) => {
                problems.entry(kind, index, format!("{field}: missing (required)"));
                field
            }
            _ => {
                // Not a key's problem (or a stand-in that failed): report it as it is.
                for key in unknown {
                    problems.entry(kind, index, format!("{key}: unknown key"));
                }
                problems.entry(kind, index, message);
                return None;
            }
        };
        problems.skip(kind, index, field);
        match T::STAND_INS.iter().find(|(k, _)| *k == field) {
            Some((_, stand_in)) => {
                table.insert(field.to_owned(), toml::Value::String((*stand_in).into()))
            }
            None => table.remove(field),
        };
        replaced.push(field.to_owned());
    }
}

/// Splits a `toml` value error into its message and the key it names (`"…\nin `key`\n"`).
fn split_error(error: &str) -> (&str, Option<&str>) {
    let error = error.trim_end();
    match error.rsplit_once("\nin `") {
        Some((message, key)) => (message.trim(), key.strip_suffix('`')),
        None => (error, None),
    }
}

/// The field serde's "missing field `name`" names.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of policy files, removed afterwards.
    struct Dir(PathBuf);

    impl Dir {
        fn new(files: &[(&str, &str)]) -> Dir {
            let dir = std::env::temp_dir().join(format!(
                "mailops-include-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            for (name, text) in files {
                let path = dir.join(name);
                std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
                std::fs::write(path, text).expect("write");
            }
            Dir(dir)
        }

        fn read(&self, name: &str) -> Result<PolicyFile, Vec<String>> {
            PolicyFile::read(&self.0.join(name))
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const NAGIOS: &str = r#"
[[originator]]
name = "nagios"
address = "nagios@*"
regex_type = "body"
pattern_type = "advanced"
pattern = '(?m)^Host: (?P<device>\S+)'
alignment = "discard"

[[event_policy]]
name = "Nagios service"
originators = ["nagios"]
severity = "major"
match_logic = "text"
first_match = "PROBLEM"
"#;

    #[test]
    fn included_entries_come_first_and_the_file_replaces_them_in_place() {
        let dir = Dir::new(&[
            ("packs/nagios.toml", NAGIOS),
            (
                "site.toml",
                r#"include = ["packs/nagios.toml"]

[[device]]
name = "db1.example.com"

[[originator]]
address = "*@*"
regex_type = "subject"
pattern_type = "classic"
pattern = "Host"
alignment = "discard"

[[originator]]
name = "nagios"
address = "nagios@mon.example.com"
regex_type = "body"
pattern_type = "advanced"
pattern = '(?m)^Host: (?P<device>\S+)'
alignment = "discard"
"#,
            ),
        ]);
        let file = dir.read("site.toml").expect("valid");
        let addresses: Vec<&str> = file
            .originators
            .iter()
            .map(|o| o.address.as_str())
            .collect();
        assert_eq!(addresses, ["nagios@mon.example.com", "*@*"]);
        assert_eq!(file.event_policies[0].name, "Nagios service");
        assert_eq!(file.devices.len(), 1);
    }

    #[test]
    fn include_problems_name_the_file_and_clashes_cycles_and_unknown_packs_are_refused() {
        let dir = Dir::new(&[
            ("a.toml", NAGIOS),
            ("b.toml", NAGIOS),
            ("both.toml", "include = [\"a.toml\", \"b.toml\"]\n"),
            ("self.toml", "include = [\"loop.toml\"]\n"),
            ("loop.toml", "include = [\"self.toml\"]\n"),
            ("bad.toml", "[[device]]\nname = \"\"\n"),
            (
                "uses-bad.toml",
                "include = [\"bad.toml\", \"missing.toml\", \"pack:nope\", 7]\n",
            ),
        ]);
        let both = dir.read("both.toml").unwrap_err();
        assert_eq!(both.len(), 2, "{both:?}");
        assert!(
            both[0].starts_with("include \"b.toml\": originator \"nagios\" is also in \"a.toml\""),
            "{both:?}"
        );
        let cycle = dir.read("self.toml").unwrap_err();
        assert!(cycle[0].contains("includes itself"), "{cycle:?}");
        let bad = dir.read("uses-bad.toml").unwrap_err();
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(
            bad[0].contains("7 is not a file name or pack:<name>"),
            "{bad:?}"
        );
        let bad = std::fs::read_to_string(dir.0.join("uses-bad.toml"))
            .unwrap()
            .replace(", 7", "");
        std::fs::write(dir.0.join("uses-bad.toml"), bad).unwrap();
        let bad = dir.read("uses-bad.toml").unwrap_err();
        assert_eq!(bad.len(), 3, "{bad:?}");
        assert_eq!(
            bad[0],
            "include \"bad.toml\": device (entry 1): name: must not be empty"
        );
        assert!(
            bad[1].starts_with("include \"missing.toml\": cannot read"),
            "{bad:?}"
        );
        assert!(
            bad[2].starts_with("include \"pack:nope\": no such pack"),
            "{bad:?}"
        );
        // Text without a place of its own can include packs only.
        let no_place = PolicyFile::parse("include = [\"a.toml\"]\n").unwrap_err();
        assert!(no_place[0].contains("only be included by a policy file read from disk"));
    }
}
