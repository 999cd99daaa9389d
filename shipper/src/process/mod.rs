//! process: the pipeline stages between parse and the ring (relabel rules on a file's target
//! labels; line stages: filters, multiline, parsers, labels, structured metadata, tenant, limits,
//! geoip).

pub mod config;
mod ctx;
pub mod custom_metrics;
pub mod extract;
mod files_read;
mod filter;
pub mod geoip;
mod go_layout;
pub mod labels;
pub mod limit;
pub mod multiline;
mod nested;
pub mod pipeline;
pub mod relabel;
pub mod replace;
pub mod routes;
mod secret_rules;
pub mod secretfilter;
pub mod selector;
mod start_values;
pub mod template;
mod tenant;
pub mod timestamp;
pub mod transform;

pub use ctx::{Changes, Extracted, LabelOp, Line};
