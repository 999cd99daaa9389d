//! Backpressure without blocking: a chunk that finds the ring full is parked and reading pauses, but
//! the reader loop goes on watching, opening new files and following rotations. Parked chunks go
//! first, in order, as soon as the ring has room.

use super::Reader;
use crate::ring::Chunk;
use crate::watch::WatchEvent;
use crossbeam_channel::{RecvTimeoutError, Select, TrySendError};
use std::time::Duration;

impl Reader {
    /// Puts a chunk into the ring, or parks it behind the ones already parked when the ring is full.
    /// False when the agent is stopping (the chunk is dropped unacknowledged: it is read again after
    /// a restart).
    pub(super) fn send(&mut self, chunk: Chunk) -> bool {
        if self.stopped() {
            return false;
        }
        if !self.parked.is_empty() {
            self.parked.push_back(chunk);
            return true;
        }
        match self.ring.try_send(chunk) {
            Ok(()) => {
                self.metrics.ring_chunks.set(self.ring.len() as i64);
                true
            }
            Err(TrySendError::Full(chunk)) => {
                self.parked.push_back(chunk);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Sends parked chunks while the ring has room; true when none is left (reading may go on).
    pub(super) fn unpark(&mut self) -> bool {
        while let Some(chunk) = self.parked.pop_front() {
            match self.ring.try_send(chunk) {
                Ok(()) => {}
                Err(TrySendError::Full(chunk)) => {
                    self.parked.push_front(chunk);
                    return false;
                }
                Err(TrySendError::Disconnected(_)) => self.parked.clear(),
            }
        }
        self.metrics.ring_chunks.set(self.ring.len() as i64);
        true
    }

    /// Waits up to `timeout` for a watch event; while chunks are parked, room in the ring ends the
    /// wait too (the first parked chunk is sent then), so reading resumes the moment it can.
    pub(super) fn wait(&mut self, timeout: Duration) -> Result<WatchEvent, RecvTimeoutError> {
        let Some(chunk) = self.parked.pop_front() else {
            return self.events.recv_timeout(timeout);
        };
        let mut select = Select::new();
        let recv = select.recv(&self.events);
        select.send(&self.ring);
        match select.select_timeout(timeout) {
            Ok(op) if op.index() == recv => {
                self.parked.push_front(chunk);
                op.recv(&self.events).map_err(|_| RecvTimeoutError::Disconnected)
            }
            Ok(op) => {
                // Only a closed ring refuses: the agent is stopping, the chunk goes unacknowledged.
                let _ = op.send(&self.ring, chunk);
                Err(RecvTimeoutError::Timeout)
            }
            Err(_) => {
                self.parked.push_front(chunk);
                Err(RecvTimeoutError::Timeout)
            }
        }
    }
}
