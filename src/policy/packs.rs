//! The policy packs shipped with mailops (`packs/<name>.toml`), built into the binary so that a
//! policy file anywhere can include one as `pack:<name>`.

/// How an `include` names a pack.
pub const PREFIX: &str = "pack:";

/// Every pack: (name, text).
const PACKS: &[(&str, &str)] = &[];

/// The text of the pack called `name`.
pub fn text(name: &str) -> Option<&'static str> {
    PACKS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}

/// The names of every pack.
pub fn names() -> Vec<&'static str> {
    PACKS.iter().map(|(name, _)| *name).collect()
}
