//! Docker json-file logs: the same invariants as the CRI target, for `{"log":…}` records.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shipper::parse::check::fuzz_one(shipper::parse::Format::Docker, data);
});
