//! `shipper convert --from alloy`: any text parses or gives an error whose position lies within
//! the text, and what parses converts or gives an error — never a panic, never a stack overflow.
//! What converts loads (the converter checks it with `shipper check`'s loader).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match shipper::convert::alloy::parse(text) {
        Err(e) => assert!(e.pos.line as usize <= text.lines().count() + 1, "{e}"),
        Ok(_) => {
            let _ = shipper::convert::convert(
                shipper::convert::Source::Alloy,
                shipper::convert::Target::Config,
                text,
                "fuzz.alloy",
            );
        }
    }
});
