//! The positions file: any bytes are either positions or an error (never a panic), and positions
//! that load are saved and loaded back unchanged. Inputs starting with 0x01 get the log format's
//! first line in front, so both formats (the log of records, and the JSON of earlier versions) are
//! explored.
#![no_main]

use shipper::checkpoint::{Positions, POSITIONS_MAGIC};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let bytes = match data.split_first() {
        Some((1, rest)) => [POSITIONS_MAGIC, rest].concat(),
        _ => data.to_vec(),
    };
    let Ok(loaded) = Positions::parse(&bytes) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("shipper-fuzz-positions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join("positions.json");
    let saved_at = loaded.saved_at.unwrap_or(std::time::UNIX_EPOCH);
    Positions::save(&path, &loaded.files, loaded.journal_cursor.as_deref(), saved_at).expect("save positions");
    let again = Positions::load(&path);
    assert_eq!(again.files, loaded.files);
    assert_eq!(again.journal_cursor, loaded.journal_cursor);
    assert_eq!(again.saved_at, Some(saved_at));
});
