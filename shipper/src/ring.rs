//! ring: the bounded, lock-free queue between the reader thread and the batcher.
//!
//! A chunk is what one read of one file produced; a bundle is a read round's chunks, up to
//! `tail::park::BUNDLE_BYTES` of lines (a bigger read goes alone). The ring holds at most `capacity`
//! bundles, so a slow Loki fills it, the reader parks the bundle in hand and stops reading (it keeps
//! watching and opening files), and the files themselves are the buffer: memory stays bounded and
//! nothing is dropped for backpressure.
//!
//! Sending a bundle does not wake the batcher: the reader rings once per read round. On a busy node
//! most reads are a few lines, and a slot and a thread wake-up per chunk cost more than the reading
//! (profiled: the batcher woke ~5,000 times a second). The bell is two flags and a park, so ringing
//! a batcher that is not asleep costs two atomic operations.
//!
//! Nor does every round wake it: a batcher with an open batch says how many more line bytes make
//! one due (`batch_size`), and sleeps until then, until the batch's `batch_wait` is over, or until
//! the ring is half full, whichever comes first. A busy node's reader sweeps ~5 times a second at
//! the default `batch_wait`; the batcher wakes a few times a second, when it has something to send.

use crate::labels::StreamLabels;
use crate::parse::Entry;
use crossbeam_channel::{bounded, Receiver, SendError, SendTimeoutError, Sender, TryRecvError, TrySendError};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Duration;

/// Identifies an open file for the life of the process (not reused).
pub type FileId = u64;

/// What one slot of the ring carries: the chunks of a read round, in order. A busy node's round is
/// dozens of small reads, and one slot (and one wake-up) for all of them is what keeps the batcher
/// from waking per read; a big read fills a slot alone (see `tail::park`).
pub type Bundle = Vec<Chunk>;

/// Entries of one file, in file order, and how far the file may be checkpointed once they are acked.
pub struct Chunk {
    pub file: FileId,
    pub labels: Arc<StreamLabels>,
    pub entries: Vec<Entry>,
    /// The file offset below which every byte is represented by this chunk's or earlier chunks' entries.
    pub commit_offset: u64,
    /// The endpoints its entries go to (bit i: endpoint i; None: every one), unless an entry
    /// names its own.
    pub clients: Option<u64>,
}

/// How the reader wakes the batcher. `ring` and `wait` each set their own flag before they read the
/// other's (sequentially consistent), so a ring is never lost: either the batcher sees `rung` before it
/// parks, or the ringer sees `sleeping` and unparks it (an unpark before the park is kept).
#[derive(Default)]
struct Bell {
    rung: AtomicBool,
    sleeping: AtomicBool,
    /// The waiting thread, known from its first wait (`sleeping` is never set before).
    waiter: OnceLock<Thread>,
    /// Live `RingSender`s: none left and the ring empty means closed.
    senders: AtomicUsize,
    /// Line bytes (plus one per bundle) sent since the batcher last took what the ring holds.
    pending: AtomicUsize,
    /// What `pending` must reach for a round's `nudge` to wake the batcher (1: any bundle).
    wanted: AtomicUsize,
    /// Bundles in the ring that wake the batcher whatever it wants (half the capacity).
    fill: usize,
}

impl Bell {
    fn ring(&self) {
        self.rung.store(true, SeqCst);
        if self.sleeping.swap(false, SeqCst) {
            if let Some(t) = self.waiter.get() {
                t.unpark();
            }
        }
    }

    /// Returns when rung (since the last wait), after `timeout`, or spuriously.
    fn wait(&self, timeout: Duration) {
        self.waiter.get_or_init(std::thread::current);
        self.sleeping.store(true, SeqCst);
        if !self.rung.swap(false, SeqCst) {
            std::thread::park_timeout(timeout);
            self.rung.store(false, SeqCst);
        }
        self.sleeping.store(false, SeqCst);
    }

    /// Rings if the batcher wants what was sent, or the ring fills up. `pending` is added to before
    /// `wanted` is read, and the batcher stores `wanted` before it reads `pending` (all sequentially
    /// consistent): either this sees what the batcher wants now, or the batcher sees these bytes and
    /// does not sleep.
    fn nudge(&self, len: usize) {
        if self.pending.load(SeqCst) >= self.wanted.load(SeqCst) || len >= self.fill {
            self.ring();
        }
    }
}

/// The reader's end of the ring (the journal reader has a clone). Chunks go in without waking the
/// batcher; `ring` wakes it, once for all the chunks sent since. A full ring rings by itself: the
/// batcher must make room.
pub struct RingSender {
    slots: Sender<Bundle>,
    bell: Arc<Bell>,
}

/// The batcher's end: it takes every chunk there is, then waits for the bell.
pub struct RingReceiver {
    slots: Receiver<Bundle>,
    bell: Arc<Bell>,
}

/// Wakes the batcher for something other than chunks (new endpoints after a reload). Does not keep
/// the ring open.
#[derive(Clone)]
pub struct RingWaker(Arc<Bell>);

pub fn ring(capacity: usize) -> (RingSender, RingReceiver) {
    let (slots_tx, slots_rx) = bounded(capacity);
    let bell = Arc::new(Bell {
        senders: AtomicUsize::new(1),
        wanted: AtomicUsize::new(1),
        fill: capacity.div_ceil(2).max(1),
        ..Bell::default()
    });
    (
        RingSender {
            slots: slots_tx,
            bell: bell.clone(),
        },
        RingReceiver { slots: slots_rx, bell },
    )
}

impl Clone for RingSender {
    fn clone(&self) -> Self {
        self.bell.senders.fetch_add(1, SeqCst);
        RingSender {
            slots: self.slots.clone(),
            bell: self.bell.clone(),
        }
    }
}

impl Drop for RingSender {
    fn drop(&mut self) {
        // Every chunk this sender sent is in the ring before the count drops: the batcher, woken,
        // takes them and then sees the ring closed.
        self.bell.senders.fetch_sub(1, SeqCst);
        self.bell.ring();
    }
}

impl RingSender {
    /// Puts a bundle in without waking the batcher (call `nudge` or `ring` after a round of sends).
    /// When the ring is full the batcher is woken and the bundle handed back.
    pub fn try_send(&self, bundle: Bundle) -> Result<(), TrySendError<Bundle>> {
        let size = bundle_size(&bundle);
        let sent = self.slots.try_send(bundle);
        match sent {
            Ok(()) => {
                self.bell.pending.fetch_add(size, SeqCst);
            }
            Err(TrySendError::Full(_)) => self.ring(),
            Err(TrySendError::Disconnected(_)) => {}
        }
        sent
    }

    /// Sends a bundle and wakes the batcher, waiting up to `timeout` for room.
    pub fn send_timeout(&self, bundle: Bundle, timeout: Duration) -> Result<(), SendTimeoutError<Bundle>> {
        let sent = match self.try_send(bundle) {
            Err(TrySendError::Full(b)) => self.slots.send_timeout(b, timeout),
            Err(TrySendError::Disconnected(b)) => Err(SendTimeoutError::Disconnected(b)),
            Ok(()) => Ok(()),
        };
        self.ring();
        sent
    }

    /// Sends a bundle, waiting for room as long as it takes, and wakes the batcher.
    pub fn send(&self, bundle: Bundle) -> Result<(), SendError<Bundle>> {
        let sent = match self.try_send(bundle) {
            Err(TrySendError::Full(b)) => self.slots.send(b),
            Err(TrySendError::Disconnected(b)) => Err(SendError(b)),
            Ok(()) => Ok(()),
        };
        self.ring();
        sent
    }

    /// Wakes the batcher for the chunks sent since the last ring.
    pub fn ring(&self) {
        self.bell.ring();
    }

    /// Ends a round of sends: wakes the batcher only if what was sent since it last looked is what
    /// it waits for (enough to make a batch due, or anything when it has no open batch), or the
    /// ring is half full. Otherwise it wakes when its oldest batch is due.
    pub fn nudge(&self) {
        self.bell.nudge(self.slots.len());
    }

    /// Bundles in the ring.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The bundle queue, for waiting on room in a `Select` (ring after sending through it).
    pub fn slots(&self) -> &Sender<Bundle> {
        &self.slots
    }
}

impl RingReceiver {
    /// The next bundle, if one is there; `Disconnected` once every sender is gone and the ring empty.
    pub fn try_recv(&self) -> Result<Bundle, TryRecvError> {
        match self.slots.try_recv() {
            // A sender gone since that look sent everything before it went.
            Err(TryRecvError::Empty) if self.bell.senders.load(SeqCst) == 0 => match self.slots.try_recv() {
                Err(TryRecvError::Empty) => Err(TryRecvError::Disconnected),
                got => got,
            },
            got => got,
        }
    }

    /// Waits until the bell rings (chunks were sent, a sender went, or a `RingWaker` woke it), at
    /// most `timeout`; it may return early.
    pub fn wait(&self, timeout: Duration) {
        self.bell.wait(timeout);
    }

    /// Starts taking what the ring holds: what is sent from now on counts toward the next wake.
    pub fn begin_take(&self) {
        self.bell.pending.store(0, SeqCst);
    }

    /// Waits like [`wait`](Self::wait), but a sender's `nudge` wakes it only once `bytes` line
    /// bytes were sent since `begin_take` (1: any bundle), or the ring is half full. Returns at
    /// once when that much was sent already.
    pub fn wait_for(&self, bytes: usize, timeout: Duration) {
        let bytes = bytes.max(1);
        self.bell.wanted.store(bytes, SeqCst);
        if self.bell.pending.load(SeqCst) >= bytes {
            return;
        }
        self.bell.wait(timeout);
    }

    /// The next bundle, waiting for it as long as it takes; None once the ring is closed and empty.
    pub fn recv(&self) -> Option<Bundle> {
        loop {
            match self.try_recv() {
                Ok(bundle) => return Some(bundle),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => self.wait(Duration::from_secs(3600)),
            }
        }
    }

    /// The next bundle, waiting up to about `timeout` for a ring when there is none.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Bundle, TryRecvError> {
        match self.try_recv() {
            Err(TryRecvError::Empty) => {
                self.wait(timeout);
                self.try_recv()
            }
            got => got,
        }
    }

    /// A handle that wakes this receiver's waits.
    pub fn waker(&self) -> RingWaker {
        RingWaker(self.bell.clone())
    }

    /// Bundles in the ring.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// What a bundle counts toward a batcher's wake: its line bytes, plus one so that a bundle of
/// offsets alone counts too.
fn bundle_size(bundle: &Bundle) -> usize {
    let lines: usize = bundle.iter().flat_map(|c| c.entries.iter()).map(|e| e.line.len()).sum();
    lines + 1
}

impl RingWaker {
    pub fn wake(&self) {
        self.0.ring();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(file: FileId) -> Chunk {
        Chunk {
            file,
            labels: Arc::new(StreamLabels::new(&Default::default())),
            entries: Vec::new(),
            commit_offset: 0,
            clients: None,
        }
    }

    /// Chunks sent and rung from another thread all arrive, however the ring and the wait interleave,
    /// and the ring reads closed after the last one.
    #[test]
    fn every_rung_chunk_arrives_then_the_ring_closes() {
        let (tx, rx) = ring(4);
        let sender = std::thread::spawn(move || {
            for i in 0..20_000u64 {
                assert!(tx.send(vec![chunk(i)]).is_ok());
                if i % 7 == 0 {
                    std::thread::yield_now();
                }
            }
        });
        let mut next = 0;
        while let Some(bundle) = rx.recv() {
            for c in bundle {
                assert_eq!(c.file, next);
                next += 1;
            }
        }
        assert_eq!(next, 20_000);
        sender.join().unwrap();
    }

    fn lines(file: FileId, bytes: usize) -> Chunk {
        let mut c = chunk(file);
        c.entries.push(Entry {
            ts_ns: 0,
            line: bytes::Bytes::from(vec![b'x'; bytes]),
            stream: crate::parse::StreamKind::Stdout,
            offset: 0,
            extra: None,
        });
        c
    }

    /// A round's nudge wakes the batcher when it has no open batch (it wants any line), not while
    /// what was sent is less than its batch still needs, and again once it is enough or the ring
    /// is half full.
    #[test]
    fn a_nudge_wakes_the_batcher_only_for_what_it_wants() {
        let (tx, rx) = ring(4);
        let rung = |rx: &RingReceiver| rx.bell.rung.swap(false, SeqCst);
        rx.begin_take();
        assert!(tx.try_send(vec![lines(1, 10)]).is_ok());
        tx.nudge();
        assert!(rung(&rx), "a batcher without an open batch wants any line");
        assert!(rx.try_recv().is_ok());

        rx.begin_take();
        rx.bell.wanted.store(1_000, SeqCst);
        assert!(tx.try_send(vec![lines(2, 300)]).is_ok());
        tx.nudge();
        assert!(!rung(&rx), "300 of the 1,000 bytes its batch needs");
        assert!(tx.try_send(vec![lines(3, 700)]).is_ok());
        tx.nudge();
        assert!(rung(&rx), "enough for a batch");

        rx.begin_take();
        while rx.try_recv().is_ok() {}
        assert!(tx.try_send(vec![chunk(4)]).is_ok());
        tx.nudge();
        assert!(!rung(&rx), "one bundle of four slots");
        assert!(tx.try_send(vec![chunk(5)]).is_ok());
        tx.nudge();
        assert!(rung(&rx), "half full");
        rx.begin_take();
        while rx.try_recv().is_ok() {}
        tx.nudge();
        assert!(!rung(&rx), "nothing sent");
        drop(tx);
        assert!(rung(&rx), "a sender going always rings");
    }

    /// `wait_for` does not sleep when what it wants was sent already (a nudge that read the old
    /// want and did not ring is not lost).
    #[test]
    fn waiting_for_what_was_already_sent_returns_at_once() {
        let (tx, rx) = ring(4);
        rx.begin_take();
        assert!(tx.try_send(vec![lines(1, 500)]).is_ok());
        let started = std::time::Instant::now();
        rx.wait_for(400, Duration::from_secs(30));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "slept with what it wanted in the ring"
        );
    }

    /// A batcher that waits for more than is ever sent still gets every chunk by its deadline, and
    /// sees the ring close.
    #[test]
    fn a_batcher_waiting_for_more_still_gets_every_chunk() {
        let (tx, rx) = ring(4);
        let sender = std::thread::spawn(move || {
            for i in 0..2_000u64 {
                while let Err(TrySendError::Full(_)) = tx.try_send(vec![lines(i, 10)]) {
                    std::thread::yield_now();
                }
                tx.nudge();
            }
        });
        let mut next = 0;
        loop {
            rx.begin_take();
            match rx.try_recv() {
                Ok(bundle) => {
                    for c in bundle {
                        assert_eq!(c.file, next);
                        next += 1;
                    }
                }
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => rx.wait_for(usize::MAX, Duration::from_millis(5)),
            }
        }
        assert_eq!(next, 2_000);
        sender.join().unwrap();
    }

    /// A ring or a waker's wake that finds the receiver asleep wakes it long before its timeout.
    #[test]
    fn a_ring_wakes_a_waiting_receiver() {
        let (tx, rx) = ring(4);
        let ringer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            assert!(tx.try_send(vec![chunk(1)]).is_ok());
            tx.ring();
            tx
        });
        let started = std::time::Instant::now();
        let got = rx.recv_timeout(Duration::from_secs(30));
        assert!(got.is_ok_and(|b| b[0].file == 1));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the ring did not wake the receiver"
        );
        let tx = ringer.join().unwrap();
        let waker = rx.waker();
        waker.wake();
        let started = std::time::Instant::now();
        rx.wait(Duration::from_secs(30));
        assert!(started.elapsed() < Duration::from_secs(10), "a waker's wake was lost");
        drop(tx);
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Disconnected)));
    }
}
