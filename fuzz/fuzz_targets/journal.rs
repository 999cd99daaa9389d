//! journalctl's export format: any bytes, cut into reads of any sizes, never panic, parse to the same
//! entries as when read at once, and never keep a value over the size limit.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shipper::journal::export::fuzz_one(data);
});
