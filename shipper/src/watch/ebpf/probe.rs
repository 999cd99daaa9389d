//! Proving a write hook works before relying on it: a hook that loads and attaches may still never
//! fire on some kernel (a function inlined away, a writer that takes another path), and then tailed
//! files would only be read at `rescan_interval`. So a write to a watched memfd must come back as an
//! event on the ring buffer within `WITHIN`, or the hook is not used.

use super::events::{parse, Record};
use super::{kernel_key, Key};
use aya::maps::{HashMap as BpfHashMap, RingBuf};
use aya::Ebpf;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

/// How long the probe's write may take to show up.
const WITHIN: Duration = Duration::from_secs(1);

/// Writes to a watched memfd and waits for its event. Err says what was missing.
pub(super) fn write_reported(bpf: &mut Ebpf) -> Result<(), String> {
    let fd = rustix::fs::memfd_create(c"shipper-watch-probe", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| format!("memfd_create for the probe write: {e}"))?;
    let mut file = std::fs::File::from(fd);
    let meta = file.metadata().map_err(|e| e.to_string())?;
    let key = kernel_key(meta.dev(), meta.ino());
    set_watched(bpf, key, true)?;
    let outcome = wait_for(bpf, key, &mut file);
    set_watched(bpf, key, false)?;
    outcome
}

fn wait_for(bpf: &mut Ebpf, key: shipper_ebpf::FileKey, file: &mut std::fs::File) -> Result<(), String> {
    let map = bpf.map_mut("EVENTS").ok_or("BPF map EVENTS missing")?;
    let mut ring = RingBuf::try_from(map).map_err(|e| e.to_string())?;
    file.write_all(b"probe\n")
        .map_err(|e| format!("the probe write failed: {e}"))?;
    let deadline = Instant::now() + WITHIN;
    while Instant::now() < deadline {
        while let Some(item) = ring.next() {
            if matches!(parse(&item), Some(Record::Written(k, _)) if k == key) {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(format!(
        "a write to a watched file was not reported within {} ms",
        WITHIN.as_millis()
    ))
}

/// Adds the probe's file to the watched files, or takes it (and its pending event) out again.
fn set_watched(bpf: &mut Ebpf, key: shipper_ebpf::FileKey, on: bool) -> Result<(), String> {
    let map = bpf.map_mut("WATCHED").ok_or("BPF map WATCHED missing")?;
    let mut watched: BpfHashMap<_, Key, u8> = BpfHashMap::try_from(map).map_err(|e| e.to_string())?;
    if on {
        return watched
            .insert(Key(key), 1, 0)
            .map_err(|e| format!("watching the probe file: {e}"));
    }
    let _ = watched.remove(&Key(key));
    if let Some(map) = bpf.map_mut("PENDING") {
        if let Ok(mut pending) = BpfHashMap::<_, Key, u64>::try_from(map) {
            let _ = pending.remove(&Key(key));
        }
    }
    Ok(())
}
