//! Which of many event policies' first match strings can match a text, found in one pass.
//!
//! Every policy contributes literals to one Aho–Corasick automaton (ASCII case folded): a text
//! policy its string, a regex policy the literals each of its matches must start with or those
//! each must end with, whichever are longer (a case-insensitive letter counts as a literal
//! one). A policy one of whose literals occurs in the text is a candidate, which its own matcher
//! then confirms; a policy with no literal of two bytes or more (a regex whose matches share
//! none) is a candidate for every text. The cost per text is one scan plus the few candidates,
//! however many policies there are, and no policy's regex runs (or keeps a cache) unless the
//! text holds its literal.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Class, Hir, HirKind};

use super::model::parse_regex;
use super::policies::Matcher;

/// Most literals one policy may add; a regex that needs more is tried on every text instead.
const MAX_LITERALS: usize = 64;

/// Shortest literal worth searching for: one byte occurs in nearly every text.
const MIN_LITERAL: usize = 2;

/// The candidates among a list of matchers, by position in that list.
#[derive(Debug, Default)]
pub struct Prefilter {
    /// Every literal, each once, when there are any.
    automaton: Option<AhoCorasick>,
    /// The positions each of the automaton's literals stands for.
    owners: Vec<Vec<u32>>,
    /// The positions with no literals: candidates for every text.
    always: Vec<u32>,
}

impl Prefilter {
    /// The prefilter of `matchers`, in order.
    pub fn new<'a>(matchers: impl IntoIterator<Item = &'a Matcher>) -> Prefilter {
        let mut p = Prefilter::default();
        let mut literals: Vec<Vec<u8>> = Vec::new();
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut count = 0;
        for (position, matcher) in matchers.into_iter().enumerate() {
            let position = u32::try_from(position).expect("fewer than 2^32 policies");
            count += 1;
            let Some(found) = required_literals(matcher) else {
                p.always.push(position);
                continue;
            };
            for literal in found {
                let i = *index.entry(literal.clone()).or_insert_with(|| {
                    literals.push(literal);
                    p.owners.push(Vec::new());
                    literals.len() - 1
                });
                p.owners[i].push(position);
            }
        }
        if literals.is_empty() {
            return p;
        }
        let built = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            // Not a DFA: thousands of literals make one of megabytes, built on each reload.
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(&literals);
        match built {
            Ok(automaton) => p.automaton = Some(automaton),
            Err(why) => {
                // Only a set of hand-written policies far past any real one's size: slower,
                // never wrong.
                tracing::warn!(%why, "event policies tried one by one");
                p.owners.clear();
                p.always = (0..count).collect();
            }
        }
        p
    }

    /// The positions that may match `text`, ascending and each once, into `found` (cleared
    /// first). Each must still be confirmed by its matcher.
    pub fn candidates(&self, text: &str, found: &mut Vec<u32>) {
        found.clear();
        found.extend_from_slice(&self.always);
        if let Some(automaton) = &self.automaton {
            for m in automaton.find_overlapping_iter(text) {
                found.extend_from_slice(&self.owners[m.pattern().as_usize()]);
            }
        }
        found.sort_unstable();
        found.dedup();
    }
}

/// Literals, ASCII lower-cased, at least one of which occurs in every text `matcher` matches;
/// `None` when there are none worth searching for (every text is then a candidate).
fn required_literals(matcher: &Matcher) -> Option<Vec<Vec<u8>>> {
    let pattern = match matcher {
        Matcher::Text(needle) if needle.len() < MIN_LITERAL => return None,
        Matcher::Text(needle) => return Some(vec![needle.to_ascii_lowercase().into_bytes()]),
        Matcher::Regex(re) => re.as_str(),
    };
    let hir = fold_ascii_case(parse_regex(pattern).ok()?);
    let mut best: Option<Vec<Vec<u8>>> = None;
    for kind in [ExtractKind::Prefix, ExtractKind::Suffix] {
        let seq = Extractor::new().kind(kind).extract(&hir);
        let Some(found) = seq.literals() else {
            continue;
        };
        let mut folded: Vec<Vec<u8>> = found
            .iter()
            .map(|l| l.as_bytes().to_ascii_lowercase())
            .collect();
        folded.sort_unstable();
        folded.dedup();
        let shortest = folded.iter().map(Vec::len).min().unwrap_or(0);
        if shortest < MIN_LITERAL || folded.len() > MAX_LITERALS {
            continue;
        }
        // The kind whose shortest literal is longer finds fewer false candidates.
        if best
            .as_ref()
            .is_none_or(|b| b.iter().map(Vec::len).min().unwrap_or(0) < shortest)
        {
            best = Some(folded);
        }
    }
    best
}

/// `hir` with each class of exactly an ASCII letter's two cases (what `(?i)` makes of most
/// letters) turned into the lower-case letter. The automaton folds ASCII case itself, and the
/// extractor, which multiplies out every class, would otherwise give up after a few letters of a
/// case-insensitive regex (`(?i)temperature sensor 12` would leave only `tempera`, shared by
/// every such policy). A class with more (`(?i)k` also holds the Kelvin sign) stays a class.
fn fold_ascii_case(hir: Hir) -> Hir {
    let folded = |subs: Vec<Hir>| subs.into_iter().map(fold_ascii_case).collect();
    match hir.into_kind() {
        HirKind::Class(class) => match ascii_letter_cases(&class) {
            Some(lower) => Hir::literal([lower]),
            None => Hir::class(class),
        },
        HirKind::Concat(subs) => Hir::concat(folded(subs)),
        HirKind::Alternation(subs) => Hir::alternation(folded(subs)),
        HirKind::Repetition(mut repetition) => {
            repetition.sub = Box::new(fold_ascii_case(*repetition.sub));
            Hir::repetition(repetition)
        }
        HirKind::Capture(mut capture) => {
            capture.sub = Box::new(fold_ascii_case(*capture.sub));
            Hir::capture(capture)
        }
        HirKind::Literal(literal) => Hir::literal(literal.0),
        HirKind::Look(look) => Hir::look(look),
        HirKind::Empty => Hir::empty(),
    }
}

/// The lower-case letter when `class` is exactly its two ASCII cases.
fn ascii_letter_cases(class: &Class) -> Option<u8> {
    let (upper, lower) = match class {
        Class::Unicode(c) => match c.ranges() {
            [a, b] if a.start() == a.end() && b.start() == b.end() => {
                (u8::try_from(a.start()).ok()?, u8::try_from(b.start()).ok()?)
            }
            _ => return None,
        },
        Class::Bytes(c) => match c.ranges() {
            [a, b] if a.start() == a.end() && b.start() == b.end() => (a.start(), b.start()),
            _ => return None,
        },
    };
    (upper.is_ascii_uppercase() && lower == upper.to_ascii_lowercase()).then_some(lower)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::model::MatchLogic;

    fn prefilter(patterns: &[(MatchLogic, &str)]) -> (Vec<Matcher>, Prefilter) {
        let matchers: Vec<Matcher> = patterns
            .iter()
            .map(|(logic, p)| Matcher::new(*logic, p).expect("compiles"))
            .collect();
        let prefilter = Prefilter::new(&matchers);
        (matchers, prefilter)
    }

    /// The candidates of `text`, and those its matchers confirm.
    fn found(matchers: &[Matcher], prefilter: &Prefilter, text: &str) -> (Vec<u32>, Vec<u32>) {
        let mut candidates = Vec::new();
        prefilter.candidates(text, &mut candidates);
        let confirmed = candidates
            .iter()
            .copied()
            .filter(|&i| matchers[i as usize].is_match(text))
            .collect();
        (candidates, confirmed)
    }

    #[test]
    fn literals_of_text_and_regex_policies() {
        use MatchLogic::{Regex, Text};
        for (logic, pattern, want) in [
            (
                Text,
                "Service check 12 is CRITICAL",
                Some(vec!["service check 12 is critical"]),
            ),
            (Text, "", None),
            (
                Regex,
                r"Job (failed|aborted)",
                Some(vec!["job aborted", "job failed"]),
            ),
            // Case-insensitive: the cases of a letter are one literal letter, except where
            // (?i) adds a letter beyond ASCII (ſ is an s).
            (
                Regex,
                r"(?i)volume 12 (degraded|failed)",
                Some(vec!["volume 12 degraded", "volume 12 failed"]),
            ),
            (
                Regex,
                r"(?i)temperature sensor 12 .* (critical|warning)",
                Some(vec![
                    "temperature sensor 12 ",
                    "temperature senſor 12 ",
                    "temperature ſensor 12 ",
                    "temperature ſenſor 12 ",
                ]),
            ),
            // Anchors and classes end a prefix; a leading .* leaves only the suffix.
            (
                Regex,
                r"^\[product3\] (\S+) is down",
                Some(vec!["[product3] "]),
            ),
            (
                Regex,
                r".*backup (failed|error)",
                Some(vec!["backup error", "backup failed"]),
            ),
            // Nothing every match shares: tried on every text.
            (Regex, r"\d+ errors?|warnings: \d+", None),
            (Regex, r"(?s).*", None),
        ] {
            let matcher = Matcher::new(logic, pattern).expect("compiles");
            let got = required_literals(&matcher);
            let want: Option<Vec<Vec<u8>>> =
                want.map(|w| w.iter().map(|l| l.as_bytes().to_vec()).collect());
            assert_eq!(got, want, "{pattern}");
        }
    }

    #[test]
    fn candidates_are_every_possible_match_and_few_others() {
        use MatchLogic::{Regex, Text};
        let (m, p) = prefilter(&[
            (Text, "Service check 1 is CRITICAL"),
            (Regex, r"(?i)volume 2 (degraded|failed)"),
            (Text, "Service check 2 is CRITICAL"),
            (Regex, r"\d+ errors?|warnings: \d+"),
            (Regex, r"^\[product4\] (\S+) is down"),
            (Text, "disk"),
        ]);
        // Only the literal-less regex is a candidate for unrelated text.
        assert_eq!(found(&m, &p, "all quiet"), (vec![3], vec![]));
        // Case is folded for candidates; the matchers decide (text policies are case-sensitive).
        assert_eq!(
            found(&m, &p, "service check 1 is critical; VOLUME 2 FAILED"),
            (vec![0, 1, 3], vec![1])
        );
        assert_eq!(
            found(&m, &p, "Service check 2 is CRITICAL, 3 errors on disk"),
            (vec![2, 3, 5], vec![2, 3, 5])
        );
        // A literal that occurs, but not where the regex wants it, is only a candidate.
        assert_eq!(
            found(&m, &p, "seen: [product4] x is down"),
            (vec![3, 4], vec![])
        );
        assert_eq!(
            found(&m, &p, "[product4] nas1 is down"),
            (vec![3, 4], vec![4])
        );
    }

    #[test]
    fn case_insensitive_policies_sharing_words_are_told_apart() {
        let (m, p) = prefilter(&[
            (
                MatchLogic::Regex,
                "(?i)temperature sensor 1 is (critical|warning)",
            ),
            (
                MatchLogic::Regex,
                "(?i)temperature sensor 2 is (critical|warning)",
            ),
        ]);
        assert_eq!(
            found(&m, &p, "TEMPERATURE SENSOR 2 is Critical"),
            (vec![1], vec![1])
        );
        assert_eq!(
            found(&m, &p, "temperature ſensor 1 is warning"),
            (vec![0], vec![0])
        );
        assert_eq!(found(&m, &p, "Temperature sensors OK"), (vec![], vec![]));
    }

    #[test]
    fn every_case_variant_of_a_match_is_a_candidate() {
        use MatchLogic::Regex;
        let (m, p) = prefilter(&[
            (Regex, "(?i)disk status: (ok|failed)"),
            (Regex, "(?i-u)backup of [a-z]+ failed"),
            (Regex, "(?i)UPS on battery"),
            (Regex, "[Ss]mart check (passed|failed)"),
        ]);
        for text in [
            "DISK STATUS: OK",
            "disk ſtatus: Failed",
            "Dis\u{212A} Status: ok",
            "Backup of DB FAILED",
            "ups ON BATTERY",
            "smart check passed",
            "Smart check failed",
        ] {
            let mut candidates = Vec::new();
            p.candidates(text, &mut candidates);
            let matching: Vec<u32> = (0..4).filter(|&i| m[i as usize].is_match(text)).collect();
            assert!(!matching.is_empty(), "{text}");
            assert!(
                matching.iter().all(|i| candidates.contains(i)),
                "{text}: {matching:?} not all in {candidates:?}"
            );
        }
    }

    #[test]
    fn unicode_case_folding_is_kept() {
        // (?i)k also matches the Kelvin sign, K: its literal keeps that variant.
        let (m, p) = prefilter(&[
            (MatchLogic::Regex, "(?i)kelvin"),
            (MatchLogic::Regex, "(?i)ſtatus"),
        ]);
        assert_eq!(found(&m, &p, "\u{212A}ELVIN"), (vec![0], vec![0]));
        assert_eq!(found(&m, &p, "STATUS"), (vec![1], vec![1]));
        assert_eq!(found(&m, &p, "ſtatus"), (vec![1], vec![1]));
    }

    #[test]
    fn a_literal_shared_is_searched_once_and_a_short_one_not_at_all() {
        use MatchLogic::{Regex, Text};
        let (m, p) = prefilter(&[
            (Text, "disk"),
            (Regex, r"(?i)disk \d+"),
            (Text, "x"),
            (Regex, r"Disk (\d+)"),
        ]);
        // "disk " (and the Unicode case variants of (?i)disk) once, for both regexes.
        assert!(p.owners.contains(&vec![1, 3]), "{:?}", p.owners);
        assert_eq!(p.always, [2]);
        assert_eq!(
            found(&m, &p, "Disk 4 and disk 5"),
            (vec![0, 1, 2, 3], vec![0, 1, 3])
        );
        assert_eq!(found(&m, &p, "box"), (vec![2], vec![2]));
    }

    #[test]
    fn no_policies_no_candidates() {
        let p = Prefilter::new(&[]);
        let mut found = vec![7];
        p.candidates("anything", &mut found);
        assert!(found.is_empty());
    }
}
