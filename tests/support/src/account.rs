//! Exact accounting of tagged lines: what was lost, duplicated or reordered on the way.
//!
//! A test writes lines `0..n` of each file with [`tag_line`](crate::tag_line), lets the agent
//! ship them, and builds an [`Account`] from what the receiver stored:
//!
//! ```no_run
//! # use shipper_testkit::{Account, Receiver, assert_exact};
//! # let loki = Receiver::start();
//! let account = Account::from_streams(&loki.streams(), [(0, 10_000), (1, 10_000)]);
//! assert_exact(&account);
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::receiver::ReceivedEntry;
use crate::tag::parse_tag;

/// A line's tag: at its start, or — for a JSON line — at the start of its first string value that
/// holds one (`{"msg":"f=1 s=2 …", …}`), so JSON logs can be accounted before and after stages
/// rewrite them.
fn tag_of(line: &str) -> Option<(u32, u64)> {
    parse_tag(line).or_else(|| {
        let i = line.strip_prefix('{')?.find("\"f=")?;
        parse_tag(line.get(i + 2..)?)
    })
}

/// How many missing sequence ranges a report lists per file.
const SHOWN_RANGES: usize = 8;

/// What arrived of one file's lines `0..expected`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileAccount {
    /// Lines written: sequence numbers `0..expected`.
    pub expected: u64,
    /// Times each sequence number arrived.
    counts: Vec<u32>,
    /// Lines received, duplicates included.
    pub received: u64,
    /// Arrivals beyond the first of a sequence number.
    pub duplicated: u64,
    /// First arrivals whose seq is below the highest seq already seen for this file in the same
    /// stream (re-sent duplicates are not counted here).
    pub out_of_order: u64,
    /// Arrivals with seq ≥ `expected`.
    pub beyond: u64,
}

impl FileAccount {
    fn new(expected: u64) -> Self {
        FileAccount {
            expected,
            counts: vec![0; usize::try_from(expected).expect("expected line count fits memory")],
            received: 0,
            duplicated: 0,
            out_of_order: 0,
            beyond: 0,
        }
    }

    /// Sequence numbers that never arrived.
    pub fn missing(&self) -> impl Iterator<Item = u64> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c == 0)
            .map(|(i, _)| i as u64)
    }

    /// How many sequence numbers never arrived.
    pub fn lost(&self) -> u64 {
        self.counts.iter().filter(|&&c| c == 0).count() as u64
    }

    /// Missing sequence numbers as inclusive ranges.
    pub fn missing_ranges(&self) -> Vec<(u64, u64)> {
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for s in self.missing() {
            match ranges.last_mut() {
                Some((_, end)) if *end + 1 == s => *end = s,
                _ => ranges.push((s, s)),
            }
        }
        ranges
    }
}

/// Loss, duplication and order of tagged lines across files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Account {
    files: BTreeMap<u32, FileAccount>,
    /// Lines without a tag.
    pub untagged: u64,
    /// Tagged lines of files not in the expectation.
    pub unknown_file: u64,
}

impl Account {
    /// An empty account expecting, per file id, lines `0..count`.
    pub fn new(expected: impl IntoIterator<Item = (u32, u64)>) -> Account {
        Account {
            files: expected.into_iter().map(|(id, n)| (id, FileAccount::new(n))).collect(),
            ..Account::default()
        }
    }

    /// Accounts every stream of a receiver's [`streams`](crate::Receiver::streams).
    pub fn from_streams(
        streams: &BTreeMap<String, Vec<ReceivedEntry>>,
        expected: impl IntoIterator<Item = (u32, u64)>,
    ) -> Account {
        let mut account = Account::new(expected);
        for entries in streams.values() {
            account.add_stream(entries.iter().map(|e| e.line.as_str()));
        }
        account
    }

    /// Accounts `lines` as one stream.
    pub fn from_lines<'a>(
        lines: impl IntoIterator<Item = &'a str>,
        expected: impl IntoIterator<Item = (u32, u64)>,
    ) -> Account {
        let mut account = Account::new(expected);
        account.add_stream(lines);
        account
    }

    /// Adds the lines of one stream, in arrival order; order is judged within the stream.
    pub fn add_stream<'a>(&mut self, lines: impl IntoIterator<Item = &'a str>) {
        let mut highest: HashMap<u32, u64> = HashMap::new();
        for line in lines {
            self.add_line(&mut highest, line);
        }
    }

    /// Adds one line of a stream whose highest seq so far per file is `highest`.
    pub(crate) fn add_line(&mut self, highest: &mut HashMap<u32, u64>, line: &str) {
        let Some((id, seq)) = tag_of(line) else {
            self.untagged += 1;
            return;
        };
        let Some(file) = self.files.get_mut(&id) else {
            self.unknown_file += 1;
            return;
        };
        file.received += 1;
        let top = highest.entry(id).or_insert(seq);
        let first_arrival = match file.counts.get_mut(seq as usize) {
            Some(c) if seq < file.expected => {
                *c = c.saturating_add(1);
                *c == 1
            }
            _ => {
                file.beyond += 1;
                false
            }
        };
        if !first_arrival && seq < file.expected {
            file.duplicated += 1;
        }
        if first_arrival && seq < *top {
            file.out_of_order += 1;
        }
        *top = (*top).max(seq);
    }

    /// One file's account.
    pub fn file(&self, id: u32) -> Option<&FileAccount> {
        self.files.get(&id)
    }

    /// Every file's account.
    pub fn files(&self) -> &BTreeMap<u32, FileAccount> {
        &self.files
    }

    /// Lines never received, over all files.
    pub fn lost(&self) -> u64 {
        self.files.values().map(FileAccount::lost).sum()
    }

    /// Extra arrivals, over all files.
    pub fn duplicated(&self) -> u64 {
        self.files.values().map(|f| f.duplicated).sum()
    }

    /// Reordered first arrivals, over all files.
    pub fn out_of_order(&self) -> u64 {
        self.files.values().map(|f| f.out_of_order).sum()
    }

    /// Tagged lines nobody wrote: unknown files or seqs beyond the expected count.
    pub fn unexpected(&self) -> u64 {
        self.unknown_file + self.files.values().map(|f| f.beyond).sum::<u64>()
    }

    /// Lines expected over all files.
    pub fn expected(&self) -> u64 {
        self.files.values().map(|f| f.expected).sum()
    }

    /// Tagged lines received over known files, duplicates included.
    pub fn received(&self) -> u64 {
        self.files.values().map(|f| f.received).sum()
    }

    /// Nothing lost, nothing duplicated, nothing unexpected.
    pub fn is_exact(&self) -> bool {
        self.lost() == 0 && self.duplicated() == 0 && self.unexpected() == 0
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "expected {}, received {}: lost {}, duplicated {}, out-of-order {}, unexpected {}, \
             untagged {}",
            self.expected(),
            self.received(),
            self.lost(),
            self.duplicated(),
            self.out_of_order(),
            self.unexpected(),
            self.untagged
        )?;
        for (id, file) in &self.files {
            let lost = file.lost();
            if lost == 0 && file.duplicated == 0 && file.out_of_order == 0 && file.beyond == 0 {
                continue;
            }
            write!(
                f,
                "\n  file {id}: expected {}, received {}, lost {lost}, duplicated {}, \
                 out-of-order {}, beyond {}",
                file.expected, file.received, file.duplicated, file.out_of_order, file.beyond
            )?;
            if lost > 0 {
                let ranges = file.missing_ranges();
                let shown: Vec<String> = ranges
                    .iter()
                    .take(SHOWN_RANGES)
                    .map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}..={b}") })
                    .collect();
                let more = if ranges.len() > SHOWN_RANGES { ", …" } else { "" };
                write!(f, "; missing {}{more}", shown.join(", "))?;
            }
        }
        Ok(())
    }
}

/// Panics with the report unless nothing was lost, duplicated, unexpected or out of order.
#[track_caller]
pub fn assert_exact(account: &Account) {
    assert!(
        account.is_exact() && account.out_of_order() == 0,
        "line accounting is not exact and in order: {account}"
    );
}

/// Panics with the report if a line was lost, unexpected or out of order within its stream, or more
/// than `max_dup` duplicated.
#[track_caller]
pub fn assert_no_loss(account: &Account, max_dup: u64) {
    assert!(
        account.lost() == 0
            && account.unexpected() == 0
            && account.out_of_order() == 0
            && account.duplicated() <= max_dup,
        "line accounting: lost, reordered or more than {max_dup} duplicated lines: {account}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tag::tag_line;

    fn lines(seqs: &[(u32, u64)]) -> Vec<String> {
        seqs.iter().map(|&(f, s)| tag_line(f, s, 12)).collect()
    }

    #[test]
    fn json_lines_carry_their_tag_in_a_string_value() {
        assert_eq!(tag_of(r#"{"msg":"f=3 s=17 xyz","level":"info"}"#), Some((3, 17)));
        assert_eq!(tag_of("f=1 s=2 plain"), Some((1, 2)));
        assert_eq!(tag_of(r#"{"msg":"no tag f=3 s=1"}"#), None);
        assert_eq!(tag_of(r#"x {"msg":"f=3 s=1"}"#), None);
    }

    #[test]
    fn exact_when_everything_arrives_once() {
        let l = lines(&[(0, 0), (0, 1), (1, 0), (0, 2)]);
        let a = Account::from_lines(l.iter().map(String::as_str), [(0, 3), (1, 1)]);
        assert!(a.is_exact(), "{a}");
        assert_exact(&a);
    }

    #[test]
    fn counts_loss_duplicates_order_and_strays() {
        let l = lines(&[(0, 0), (0, 3), (0, 1), (0, 3), (0, 9), (5, 0)]);
        let mut a = Account::new([(0, 6)]);
        a.add_stream(l.iter().map(String::as_str).chain(["no tag"]));
        let f = a.file(0).unwrap();
        assert_eq!(f.missing().collect::<Vec<_>>(), vec![2, 4, 5]);
        assert_eq!(f.missing_ranges(), vec![(2, 2), (4, 5)]);
        assert_eq!((a.lost(), a.duplicated(), a.out_of_order()), (3, 1, 1));
        assert_eq!((a.unexpected(), a.untagged), (2, 1));
        let report = a.to_string();
        assert!(
            report.contains("lost 3") && report.contains("missing 2, 4..=5"),
            "{report}"
        );
        assert!(std::panic::catch_unwind(|| assert_no_loss(&a, 10)).is_err());
    }

    #[test]
    fn order_is_judged_per_stream() {
        let mut a = Account::new([(0, 4)]);
        a.add_stream(lines(&[(0, 2), (0, 3)]).iter().map(String::as_str));
        a.add_stream(lines(&[(0, 0), (0, 1)]).iter().map(String::as_str));
        assert_eq!(a.out_of_order(), 0);
        assert_no_loss(&a, 0);
        // Complete but reordered within one stream: not accepted.
        let mut b = Account::new([(0, 2)]);
        b.add_stream(lines(&[(0, 1), (0, 0)]).iter().map(String::as_str));
        assert_eq!((b.lost(), b.out_of_order()), (0, 1));
        assert!(std::panic::catch_unwind(|| assert_no_loss(&b, 0)).is_err());
        assert!(std::panic::catch_unwind(|| assert_exact(&b)).is_err());
    }
}
