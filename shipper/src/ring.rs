//! ring: the bounded, lock-free queue between the reader thread and the batcher.
//!
//! A chunk is what one read of one file produced. The ring holds at most `capacity` chunks, so a slow
//! Loki fills it, the reader parks the chunk in hand and stops reading (it keeps watching and opening
//! files), and the files themselves are the buffer: memory stays bounded and nothing is dropped for
//! backpressure.

use crate::labels::StreamLabels;
use crate::parse::Entry;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::sync::Arc;

/// Identifies an open file for the life of the process (not reused).
pub type FileId = u64;

/// Entries of one file, in file order, and how far the file may be checkpointed once they are acked.
pub struct Chunk {
    pub file: FileId,
    pub labels: Arc<StreamLabels>,
    pub entries: Vec<Entry>,
    /// The file offset below which every byte is represented by this chunk's or earlier chunks' entries.
    pub commit_offset: u64,
}

pub fn ring(capacity: usize) -> (Sender<Chunk>, Receiver<Chunk>) {
    bounded(capacity)
}
