//! The positions file: any bytes are either positions or an error (never a panic), and positions
//! that load are saved and loaded back unchanged.
#![no_main]

use shipper::checkpoint::Positions;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(loaded) = Positions::parse(data) else {
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
