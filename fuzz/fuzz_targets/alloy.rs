//! The Alloy configuration syntax parser (`shipper convert --from alloy`): any text parses or gives an
//! error whose position lies within the text — never a panic, never a stack overflow.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = shipper::convert::alloy::parse(text) {
        assert!(e.pos.line as usize <= text.lines().count() + 1, "{e}");
    }
});
