//! Into the ring, and backpressure without blocking.
//!
//! Chunks gather in a bundle (a read round's chunks, up to [`BUNDLE_BYTES`] of lines) that takes one
//! slot of the ring; the batcher is rung once per round. A bundle that finds the ring full is parked
//! and reading pauses, but the reader loop goes on watching, opening new files and following
//! rotations. Parked bundles go first, in order, as soon as the ring has room.

use super::Reader;
use crate::ring::{Bundle, Chunk};
use crate::watch::WatchEvent;
use crossbeam_channel::{RecvTimeoutError, Select, TrySendError};
use std::time::Duration;

/// Lines a bundle gathers before it goes into the ring without waiting for the end of the round
/// (`tail.read_buffer_size` by default: a full read fills a slot alone).
pub const BUNDLE_BYTES: usize = 256 << 10;

impl Reader {
    /// Adds a chunk to the bundle being gathered (which goes into the ring when big enough, or at
    /// the end of the round). False when the agent is stopping (the chunk is dropped unacknowledged:
    /// it is read again after a restart).
    pub(super) fn send(&mut self, chunk: Chunk) -> bool {
        if self.stopped() {
            return false;
        }
        self.bundle_bytes += chunk.entries.iter().map(|e| e.line.len()).sum::<usize>();
        self.bundle.push(chunk);
        if self.bundle_bytes >= BUNDLE_BYTES {
            return self.send_bundle();
        }
        true
    }

    /// Puts the bundle being gathered into the ring, or parks it behind the ones already parked
    /// when the ring is full. False when the ring is closed (the agent is stopping).
    fn send_bundle(&mut self) -> bool {
        if self.bundle.is_empty() {
            return true;
        }
        let bundle: Bundle = std::mem::take(&mut self.bundle);
        self.bundle_bytes = 0;
        if !self.parked.is_empty() {
            self.parked.push_back(bundle);
            return true;
        }
        match self.ring.try_send(bundle) {
            Ok(()) => {
                self.unrung = true;
                self.metrics.ring_chunks.set(self.ring.len() as i64);
                true
            }
            Err(TrySendError::Full(bundle)) => {
                self.parked.push_back(bundle);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Sends parked bundles while the ring has room; true when none is left (reading may go on).
    pub(super) fn unpark(&mut self) -> bool {
        while let Some(bundle) = self.parked.pop_front() {
            match self.ring.try_send(bundle) {
                Ok(()) => self.unrung = true,
                Err(TrySendError::Full(bundle)) => {
                    self.parked.push_front(bundle);
                    return false;
                }
                Err(TrySendError::Disconnected(_)) => self.parked.clear(),
            }
        }
        self.metrics.ring_chunks.set(self.ring.len() as i64);
        true
    }

    /// Ends a round: the bundle goes into the ring (or is parked), and the batcher is nudged for
    /// what was sent since: it wakes if that makes a batch due or the ring half full (see `ring`).
    pub(super) fn ring_bell(&mut self) {
        self.send_bundle();
        if std::mem::take(&mut self.unrung) {
            self.ring.nudge();
        }
    }

    /// Waits up to `timeout` for a watch event; while bundles are parked, room in the ring ends the
    /// wait too (the first parked bundle is sent then), so reading resumes the moment it can.
    pub(super) fn wait(&mut self, timeout: Duration) -> Result<WatchEvent, RecvTimeoutError> {
        self.ring_bell();
        let Some(bundle) = self.parked.pop_front() else {
            return self.events.recv_timeout(timeout);
        };
        let mut select = Select::new();
        let recv = select.recv(&self.events);
        select.send(self.ring.slots());
        match select.select_timeout(timeout) {
            Ok(op) if op.index() == recv => {
                self.parked.push_front(bundle);
                op.recv(&self.events).map_err(|_| RecvTimeoutError::Disconnected)
            }
            Ok(op) => {
                // Only a closed ring refuses: the agent is stopping, the bundle goes unacknowledged.
                let _ = op.send(self.ring.slots(), bundle);
                self.ring.ring();
                Err(RecvTimeoutError::Timeout)
            }
            Err(_) => {
                self.parked.push_front(bundle);
                Err(RecvTimeoutError::Timeout)
            }
        }
    }
}
