//! Test support for shipper: Loki's side of the wire and the runtimes' side of the disk.
//!
//! - [`receiver`]: [`Receiver`], a Loki-compatible push endpoint (HTTP/1.1, snappy + protobuf
//!   and JSON, Loki 3 validation, partial success) with scriptable [`Fault`]s, down/stalled
//!   modes and auth, that stores what it accepts for inspection; optionally over TLS
//!   ([`Receiver::start_tls`], certificates from a runtime-generated [`TestPki`]).
//! - [`writer`]: [`LogWriter`], CRI / docker json-file / raw log files written like containerd
//!   and dockerd write them (16 KiB splits, RFC 3339 nanosecond timestamps), and rotation like
//!   kubelet, dockerd and logrotate `copytruncate`.
//! - [`tag`] and [`account`]: lines that carry (file, seq) so tests can count exactly what was
//!   lost, duplicated or reordered between the files and the receiver; [`tally`] counts them as
//!   they arrive, for runs too long to store every line.
//! - [`kubeapi`]: [`KubeApi`], a fake Kubernetes API server (list/watch of pods and namespaces
//!   with the real wire protocol: resourceVersions, selectors, pagination, bookmarks, 410 Gone)
//!   with scriptable watch drops, compaction, RBAC denial and outages, for shipper's `kube`
//!   client.
//! - [`logproto`] and [`client`]: the push schema as prost types and a minimal HTTP client.
//! - [`mmdb`]: MaxMind DB files (GeoIP2-shaped City and ASN records) for the `geoip` stage.
//!
//! This crate is an independent implementation of Loki's side of the contract in
//! `loki-push.md` (and of the Kubernetes API server's side of list and watch); it deliberately
//! does not depend on the `shipper` crate.

pub mod account;
pub mod client;
pub mod journal;
pub mod kubeapi;
pub mod logproto;
pub mod mmdb;
mod net;
pub mod proc;
pub mod prom;
pub mod receiver;
pub mod tag;
pub mod tally;
pub mod time;
pub mod writer;

pub use account::{assert_exact, assert_no_loss, Account, FileAccount};
pub use kubeapi::{ApiRequest, KubeApi, Namespace, Pod};
pub use receiver::{Fault, Limits, Reason, ReceivedEntry, Receiver, RequestRecord, State, TestPki, TlsOptions};
pub use tag::{parse_tag, tag_line, varied_len};
pub use tally::Tally;
pub use writer::{copytruncate, delete, rotate_docker, rotate_kubelet, rotate_kubelet_retiring, Format, LogWriter};
