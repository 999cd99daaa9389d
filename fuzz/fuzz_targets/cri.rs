//! CRI log files (containerd, CRI-O): any bytes, cut into reads of any sizes, never panic, never ship
//! invalid UTF-8 or an over-long line, and never commit past an unfinished line.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shipper::parse::check::fuzz_one(shipper::parse::Format::Cri, data);
});
