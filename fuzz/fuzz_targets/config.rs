//! The config loader: any text is a config or an error that names where it is (never a panic), and a
//! config that loads also validates without panicking.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = shipper::config::load_str(text, "fuzz.yaml") {
        let _ = config.validate("fuzz.yaml");
    }
});
