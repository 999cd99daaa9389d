//! Accounting lines as they arrive, without keeping them: for long runs (the bench), where
//! storing every line would cost the receiver more than shipping it costs the agent.

use std::collections::HashMap;

use crate::account::Account;

/// A running [`Account`] of tagged lines, order judged per stream, plus the write → arrival
/// latency of every entry when asked for.
#[derive(Debug)]
pub struct Tally {
    account: Account,
    /// Highest seq so far per stream key and file id.
    highest: HashMap<String, HashMap<u32, u64>>,
    /// `arrived - timestamp` of every entry, in nanoseconds, when kept.
    latencies_ns: Option<Vec<i64>>,
}

impl Tally {
    /// Expects, per file id, lines `0..count`; keeps latencies when `latency` is set.
    pub fn new(expected: impl IntoIterator<Item = (u32, u64)>, latency: bool) -> Tally {
        Tally {
            account: Account::new(expected),
            highest: HashMap::new(),
            latencies_ns: latency.then(Vec::new),
        }
    }

    /// Counts lines of stream `stream`, in arrival order, each with its timestamp and when it
    /// arrived (nanoseconds).
    pub fn observe<'a>(&mut self, stream: &str, entries: impl IntoIterator<Item = (&'a str, i64, i64)>) {
        let highest = match self.highest.get_mut(stream) {
            Some(h) => h,
            None => self.highest.entry(stream.to_owned()).or_default(),
        };
        for (line, ts_ns, arrived_ns) in entries {
            self.account.add_line(highest, line);
            if let Some(l) = &mut self.latencies_ns {
                l.push(arrived_ns - ts_ns);
            }
        }
    }

    /// The account so far.
    pub fn account(&self) -> &Account {
        &self.account
    }

    /// Latencies of every entry so far (empty unless kept), in arrival order.
    pub fn latencies_ns(&self) -> &[i64] {
        self.latencies_ns.as_deref().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tag_line;

    #[test]
    fn tally_matches_the_account_of_stored_streams() {
        let mut t = Tally::new([(0, 4), (1, 2)], true);
        for (stream, f, seq) in [
            ("a", 0, 0),
            ("a", 0, 2),
            ("a", 0, 1),
            ("b", 1, 0),
            ("a", 0, 2),
            ("b", 1, 0),
        ] {
            t.observe(stream, [(tag_line(f, seq, 40).as_str(), 100, 150)]);
        }
        let a = t.account();
        let lines_a: Vec<String> = [0, 2, 1, 2].iter().map(|&s| tag_line(0, s, 40)).collect();
        let lines_b: Vec<String> = [0, 0].iter().map(|&s| tag_line(1, s, 40)).collect();
        let mut stored = Account::new([(0, 4), (1, 2)]);
        stored.add_stream(lines_a.iter().map(String::as_str));
        stored.add_stream(lines_b.iter().map(String::as_str));
        assert_eq!(a, &stored);
        assert_eq!((a.lost(), a.duplicated(), a.out_of_order()), (2, 2, 1));
        assert_eq!(t.latencies_ns(), [50; 6]);
    }
}
