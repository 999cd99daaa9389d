//! Real systemd journal files for the journald input's tests: entries written in journald's export
//! format and turned into a journal file by Debian's `systemd-journal-remote` (package
//! systemd-journal-remote, installed by `cargo xtask setup`), to be read by the real `journalctl`.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

pub const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";

/// Whether journalctl and systemd-journal-remote are here. Under CI they must be (the test fails);
/// elsewhere the test skips itself, saying why.
pub fn tools(test: &str) -> bool {
    let ok = Path::new(JOURNAL_REMOTE).exists()
        && Command::new("journalctl")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test} must run in CI: `cargo xtask setup` installs systemd-journal-remote"
        );
        eprintln!("skipping {test}: needs journalctl and {JOURNAL_REMOTE} (apt-get install systemd-journal-remote)");
    }
    ok
}

/// Now, in microseconds since the Unix epoch (journald's realtime clock).
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

/// One journal entry as a test writes it.
#[derive(Clone, Debug)]
pub struct JournalEntry {
    pub ts_us: u64,
    pub unit: String,
    pub priority: u8,
    pub hostname: String,
    pub message: Vec<u8>,
}

impl JournalEntry {
    /// An entry of `unit` on host `node-a`, priority 6 (info).
    pub fn new(ts_us: u64, unit: &str, message: &[u8]) -> Self {
        JournalEntry {
            ts_us,
            unit: unit.to_string(),
            priority: 6,
            hostname: "node-a".into(),
            message: message.to_vec(),
        }
    }
}

/// The entries in export format: text fields, and the length-prefixed binary form for messages
/// with a newline or bytes that are not printable ASCII.
pub fn export(entries: &[JournalEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(
            format!(
                "__REALTIME_TIMESTAMP={ts}\n__MONOTONIC_TIMESTAMP={ts}\n_BOOT_ID=00112233445566778899aabbccddeeff\n_SYSTEMD_UNIT={}\nPRIORITY={}\n_HOSTNAME={}\nSYSLOG_IDENTIFIER=test\n",
                e.unit,
                e.priority,
                e.hostname,
                ts = e.ts_us
            )
            .as_bytes(),
        );
        if e.message.iter().all(|&b| (b' '..=b'~').contains(&b)) {
            out.extend_from_slice(b"MESSAGE=");
            out.extend_from_slice(&e.message);
        } else {
            out.extend_from_slice(b"MESSAGE\n");
            out.extend_from_slice(&(e.message.len() as u64).to_le_bytes());
            out.extend_from_slice(&e.message);
        }
        out.extend_from_slice(b"\n\n");
    }
    out
}

/// Writes `entries` as a new journal file `file` (its directory is created) with
/// systemd-journal-remote; the export-format input is kept beside it as `<file>.export`.
pub fn write_journal(file: &Path, entries: &[JournalEntry]) {
    let dir = file.parent().expect("journal file in a directory");
    std::fs::create_dir_all(dir).unwrap();
    let input = file.with_extension("export");
    std::fs::write(&input, export(entries)).unwrap();
    let res = Command::new(JOURNAL_REMOTE)
        .arg(format!("--output={}", file.display()))
        .arg("--split-mode=none")
        .arg(&input)
        .output()
        .expect("run systemd-journal-remote");
    assert!(
        res.status.success(),
        "systemd-journal-remote: {}",
        String::from_utf8_lossy(&res.stderr)
    );
}
