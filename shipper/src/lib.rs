//! shipper: tails log files on a node and pushes them to Grafana Loki, losing nothing.
//!
//! The modules follow the data path:
//! `discover → watch → tail → parse → ring → batch → push → checkpoint`,
//! wired together by [`agent`] (and rewired by [`reload`]); [`config`] and [`cli`] are the user-facing surface,
//! [`metrics`] and [`server`] the self-observability.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod agent;
pub mod batch;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod convert;
pub mod discover;
pub mod journal;
pub mod labels;
pub mod logging;
mod metric_labels;
pub mod metrics;
pub mod parse;
pub mod process;
pub mod push;
pub mod reload;
pub mod ring;
pub mod server;
pub mod tail;
pub mod units;
pub mod watch;
mod wire;

/// Maps and sets keyed by our own ids and inode numbers, looked up several times per read: a fast
/// hasher instead of SipHash (the keys are not chosen by an attacker).
pub(crate) type IdMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type IdSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// Now, in nanoseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

#[cfg(test)]
mod layering_tests;
