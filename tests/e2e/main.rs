//! End-to-end tests: the real `shipper` binary tails real files and pushes to a Loki-compatible
//! receiver (real HTTP, snappy + protobuf decoding, Loki's validation); every line is accounted for.

mod alerts;
mod blocked;
mod client;
mod config_errors;
mod convert;
mod convert_charts;
mod convert_journal;
mod corpus;
mod crash;
mod cutover;
mod delivery;
mod disk;
mod ebpf;
mod faults;
mod file_sd;
mod hostile;
mod journal;
mod kube_api;
mod kubernetes;
mod memory;
mod modes;
mod outage;
mod pods;
mod positions;
mod pressure;
mod protect;
mod reload;
mod restart;
mod rotation;
mod routing;
mod safety_net;
mod stages;
mod support;
mod tls;
mod transform;
