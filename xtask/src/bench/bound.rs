//! The physical bound: the least CPU this job can take — read the same bytes, split and parse lines,
//! encode Loki's protobuf and snappy-compress it, on one core, in process, with shipper's own parser
//! and encoder. The agent's CPU per GiB is reported as a ratio of it.

use shipper::batch::{encode_snappy, BatchEntry, StreamBatch};
use shipper::parse::{FileParser, Format, Framer, ParseStats};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

const BATCH_BYTES: usize = 1 << 20;

/// CPU seconds per GiB for `files` (CRI), measured on this thread.
pub fn cpu_s_per_gib(files: &[impl AsRef<Path>]) -> Result<f64, String> {
    let cpu = || shipper_testkit::proc::cpu_seconds("/proc/thread-self/stat");
    let start = cpu();
    let mut bytes = 0u64;
    let labels: Arc<str> = Arc::from(r#"{filename="bench", job="bench", stream="stdout"}"#);
    for path in files {
        let path = path.as_ref();
        let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut framer = Framer::new(0, 256 << 10);
        let mut parser = FileParser::new(Format::Cri, 256 << 10);
        let mut stats = ParseStats::default();
        let mut entries = Vec::new();
        let mut batch: Vec<BatchEntry> = Vec::new();
        let mut batch_bytes = 0;
        loop {
            let buf = framer.buf_mut();
            let len = buf.len();
            buf.resize(len + (256 << 10), 0);
            let n = f.read(&mut buf[len..]).map_err(|e| e.to_string())?;
            buf.truncate(len + n);
            if n == 0 {
                break;
            }
            bytes += n as u64;
            while let Some(records) = framer.take_records(&mut stats) {
                parser.push(records, 0, &mut entries, &mut stats);
            }
            for e in entries.drain(..) {
                batch_bytes += e.line.len();
                batch.push(BatchEntry {
                    ts_ns: e.ts_ns,
                    line: e.line,
                    metadata: bytes::Bytes::new(),
                });
            }
            if batch_bytes >= BATCH_BYTES {
                let streams = [StreamBatch {
                    labels: labels.clone(),
                    entries: std::mem::take(&mut batch),
                }];
                std::hint::black_box(encode_snappy(&streams));
                batch_bytes = 0;
            }
        }
    }
    let secs = cpu() - start;
    Ok(secs / (bytes as f64 / (1u64 << 30) as f64))
}
