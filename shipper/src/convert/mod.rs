//! `shipper convert` (in progress): reading Alloy and Promtail configurations to write ours. So far,
//! the parser of Alloy's configuration syntax.

pub mod alloy;
