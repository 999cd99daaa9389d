//! Watches: which events a watch gets, the registry of open watches, and the streaming
//! response body that carries them.
//!
//! A watch is registered under the store lock in the same critical section that computes its
//! initial events (replay or synthetic `ADDED`s), so no write can fall between the two. Live
//! events are pushed into the watch's unbounded channel by the writer itself, under that lock,
//! and the body wakes up on them at once: no polling.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame};
use serde_json::{json, Value};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::select::Filter;
use super::server::Shared;
use super::status::ApiError;
use super::store::{Change, ChangeType, Resource, Store};

/// The annotation of the bookmark that ends the initial events of a streaming list.
pub(crate) const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// What a watch's channel carries.
#[derive(Debug)]
pub(crate) enum WatchMsg {
    /// One event line, newline included.
    Line(Bytes),
    /// End the stream abruptly: the connection is closed without the final chunk.
    Abort,
}

/// Where a watch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WatchFrom {
    /// `resourceVersion` unset or "0": synthetic `ADDED` for every matching object, then live.
    Current,
    /// `sendInitialEvents=false` without a version: live events only.
    Now,
    /// `resourceVersion=N`: every retained event after N, then live; 410 if N is too old.
    After(u64),
    /// `sendInitialEvents=true` (a streaming list): like `Current`, then a bookmark carrying
    /// [`INITIAL_EVENTS_END`].
    InitialEvents,
}

/// An open watch.
pub(crate) struct Watch {
    id: u64,
    resource: Resource,
    filter: Filter,
    bookmarks: bool,
    tx: UnboundedSender<WatchMsg>,
}

/// The registry of open watches.
#[derive(Default)]
pub(crate) struct Watches {
    next_id: u64,
    open: Vec<Watch>,
}

impl Watches {
    /// Sends `change` to every watch it concerns, and forgets watches whose body is gone.
    pub fn publish(&mut self, change: &Change) {
        self.open.retain(|w| {
            if w.resource != change.resource {
                return true;
            }
            match event_for(&w.filter, change) {
                Some(line) => w.tx.send(WatchMsg::Line(line)).is_ok(),
                None => !w.tx.is_closed(),
            }
        });
    }

    /// Sends a bookmark at `rv` to every watch that allows them.
    pub fn bookmark(&mut self, rv: u64) {
        self.open
            .retain(|w| !w.bookmarks || w.tx.send(WatchMsg::Line(bookmark_line(w.resource, rv, false))).is_ok());
    }

    /// Aborts every open watch.
    pub fn abort_all(&mut self) {
        for w in self.open.drain(..) {
            let _ = w.tx.send(WatchMsg::Abort);
        }
    }

    /// Forgets watch `id` (its body was dropped). Returns whether it was open.
    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.open.len();
        self.open.retain(|w| w.id != id);
        self.open.len() != before
    }

    /// Open watches of `resource` (by plural) whose body still exists.
    pub fn count(&self, plural: &str) -> usize {
        self.open
            .iter()
            .filter(|w| w.resource.plural() == plural && !w.tx.is_closed())
            .count()
    }
}

/// How a new watch starts: the lines to send first, and the id it is registered under
/// (`None`: it is not registered, the stream ends after those lines).
pub(crate) struct WatchStart {
    pub initial: Vec<Bytes>,
    pub id: Option<u64>,
}

impl Store {
    /// Computes the first events of a new watch and registers it, atomically (the caller
    /// holds the store lock). A version older than the history gives the one `ERROR` event a
    /// real API server sends (410 Expired, inside a 200 response) and no registration.
    pub fn open_watch(
        &mut self,
        resource: Resource,
        filter: Filter,
        from: WatchFrom,
        bookmarks: bool,
        tx: UnboundedSender<WatchMsg>,
    ) -> WatchStart {
        let added = |store: &Store| -> Vec<Bytes> {
            let objects = store.objects(resource).values();
            objects
                .filter(|o| filter.matches(o))
                .map(|o| event_line("ADDED", o))
                .collect()
        };
        let initial = match from {
            WatchFrom::After(rv) if rv < self.compacted() => {
                let status = ApiError::too_old(rv, self.compacted()).to_json();
                let initial = vec![event_line("ERROR", &status)];
                return WatchStart { initial, id: None };
            }
            WatchFrom::After(rv) => self
                .changes_after(resource, rv)
                .filter_map(|c| event_for(&filter, c))
                .collect(),
            WatchFrom::Current => added(self),
            WatchFrom::Now => Vec::new(),
            WatchFrom::InitialEvents => {
                let mut lines = added(self);
                lines.push(bookmark_line(resource, self.resource_version(), true));
                lines
            }
        };
        self.watches.next_id += 1;
        let id = self.watches.next_id;
        self.watches.open.push(Watch {
            id,
            resource,
            filter,
            bookmarks,
            tx,
        });
        WatchStart { initial, id: Some(id) }
    }
}

/// The event a watch with `filter` gets for `change`, if any. Like the API server's watch
/// cache, a modification that moves an object into the selection is an `ADDED` and one that
/// moves it out is a `DELETED` (carrying the new state), so that the client's view stays
/// exactly the selected set.
pub(crate) fn event_for(filter: &Filter, change: &Change) -> Option<Bytes> {
    let now = filter.matches(&change.object);
    let before = change.prev.as_ref().is_some_and(|p| filter.matches(p));
    let kind = match change.kind {
        ChangeType::Added if now => "ADDED",
        ChangeType::Deleted if now => "DELETED",
        ChangeType::Modified => match (before, now) {
            (true, true) => "MODIFIED",
            (false, true) => "ADDED",
            (true, false) => "DELETED",
            (false, false) => return None,
        },
        _ => return None,
    };
    Some(event_line(kind, &change.object))
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({ "type": kind, "object": object })).expect("JSON values serialize");
    line.push(b'\n');
    Bytes::from(line)
}

/// A `BOOKMARK` event: an object of the watched kind with only a resourceVersion (and, ending a
/// streaming list's initial events, [`INITIAL_EVENTS_END`]).
fn bookmark_line(resource: Resource, rv: u64, initial_end: bool) -> Bytes {
    let mut metadata = json!({ "resourceVersion": rv.to_string() });
    if initial_end {
        metadata["annotations"] = json!({ INITIAL_EVENTS_END: "true" });
    }
    event_line(
        "BOOKMARK",
        &json!({ "kind": resource.kind(), "apiVersion": "v1", "metadata": metadata }),
    )
}

/// Removes its watch from the registry when the body is dropped (stream ended, client gone,
/// connection closed), so [`Watches::count`] only counts watches someone is reading.
struct Registration {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let removed = self.shared.lock().store.watches.remove(self.id);
        if removed {
            self.shared.changed.notify_all();
        }
    }
}

/// The chunked body of a watch response: the initial lines, then what arrives on the channel,
/// until `timeoutSeconds` passes (a clean end, as on a real server) or an abort (an error, on
/// which hyper closes the connection without the terminating chunk).
pub(crate) struct WatchBody {
    pending: VecDeque<Bytes>,
    rx: Option<UnboundedReceiver<WatchMsg>>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    _registration: Option<Registration>,
}

impl WatchBody {
    pub fn new(
        shared: Arc<Shared>,
        start: WatchStart,
        rx: UnboundedReceiver<WatchMsg>,
        timeout: Duration,
    ) -> WatchBody {
        let registration = start.id.map(|id| Registration { shared, id });
        WatchBody {
            pending: start.initial.into(),
            rx: registration.is_some().then_some(rx),
            deadline: Box::pin(tokio::time::sleep(timeout)),
            _registration: registration,
        }
    }
}

impl Body for WatchBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Some(line) = this.pending.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(line))));
        }
        let Some(rx) = this.rx.as_mut() else {
            return Poll::Ready(None);
        };
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.rx = None;
            return Poll::Ready(None);
        }
        match rx.poll_recv(cx) {
            Poll::Ready(Some(WatchMsg::Line(line))) => Poll::Ready(Some(Ok(Frame::data(line)))),
            Poll::Ready(Some(WatchMsg::Abort)) => {
                this.rx = None;
                Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "kubeapi: watch dropped by the test",
                ))))
            }
            // The store dropped the sender: the server is shutting down.
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc::unbounded_channel;

    use super::*;

    fn pod(name: &str, node: &str) -> Value {
        json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"namespace": "ns", "name": name}, "spec": {"nodeName": node}})
    }

    fn on_node(node: &str) -> Filter {
        Filter::parse(Resource::Pods, None, Some(&format!("spec.nodeName={node}")), None).unwrap()
    }

    /// (type, name, resourceVersion) of each line.
    fn decode(lines: &[Bytes]) -> Vec<(String, String, String)> {
        lines
            .iter()
            .map(|l| {
                let v: Value = serde_json::from_slice(l).unwrap();
                let meta = &v["object"]["metadata"];
                let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
                (s(&v["type"]), s(&meta["name"]), s(&meta["resourceVersion"]))
            })
            .collect()
    }

    fn drain(rx: &mut UnboundedReceiver<WatchMsg>) -> Vec<Bytes> {
        let mut out = Vec::new();
        while let Ok(msg) = rx.try_recv() {
            match msg {
                WatchMsg::Line(l) => out.push(l),
                WatchMsg::Abort => out.push(Bytes::from_static(b"{\"type\":\"ABORT\"}")),
            }
        }
        out
    }

    fn t(kind: &str, name: &str, rv: u64) -> (String, String, String) {
        (kind.into(), name.into(), rv.to_string())
    }

    #[test]
    fn replay_then_live_with_selector_transitions() {
        let mut s = Store::new();
        s.apply(Resource::Pods, pod("a", "n1")); // 1001
        s.apply(Resource::Pods, pod("b", "n2")); // 1002
        s.apply(Resource::Pods, pod("a", "n2")); // 1003: leaves n1
        s.apply(Resource::Pods, pod("b", "n1")); // 1004: enters n1
        let (tx, mut rx) = unbounded_channel();
        let start = s.open_watch(Resource::Pods, on_node("n1"), WatchFrom::After(1001), true, tx);
        assert!(start.id.is_some());
        assert_eq!(decode(&start.initial), [t("DELETED", "a", 1003), t("ADDED", "b", 1004)]);
        s.apply(Resource::Pods, pod("b", "n1")); // 1005
        s.apply(Resource::Pods, pod("c", "n2")); // 1006: not ours
        assert!(s.delete(Resource::Pods, &("ns".into(), "b".into()))); // 1007
        s.watches.bookmark(s.resource_version());
        let live = drain(&mut rx);
        assert_eq!(
            decode(&live),
            [
                t("MODIFIED", "b", 1005),
                t("DELETED", "b", 1007),
                t("BOOKMARK", "", 1007)
            ]
        );
        assert_eq!(s.watches.count("pods"), 1);
        assert_eq!(s.watches.count("namespaces"), 0);
        s.watches.abort_all();
        assert_eq!(decode(&drain(&mut rx))[0].0, "ABORT");
        assert_eq!(s.watches.count("pods"), 0);
    }

    #[test]
    fn current_and_streaming_starts() {
        let mut s = Store::new();
        s.apply(Resource::Pods, pod("a", "n1"));
        s.apply(Resource::Pods, pod("b", "n2"));
        let (tx, _rx) = unbounded_channel();
        let start = s.open_watch(Resource::Pods, on_node("n1"), WatchFrom::Current, false, tx.clone());
        assert_eq!(decode(&start.initial), [t("ADDED", "a", 1001)]);
        let start = s.open_watch(
            Resource::Pods,
            Filter::default(),
            WatchFrom::InitialEvents,
            true,
            tx.clone(),
        );
        assert_eq!(
            decode(&start.initial),
            [t("ADDED", "a", 1001), t("ADDED", "b", 1002), t("BOOKMARK", "", 1002)]
        );
        let end: Value = serde_json::from_slice(&start.initial[2]).unwrap();
        assert_eq!(
            end["object"]["metadata"]["annotations"][INITIAL_EVENTS_END],
            json!("true")
        );
        assert_eq!(end["object"]["kind"], json!("Pod"));
        let start = s.open_watch(Resource::Pods, Filter::default(), WatchFrom::Now, false, tx);
        assert!(start.initial.is_empty());
    }

    #[test]
    fn bookmarks_only_where_allowed() {
        let mut s = Store::new();
        let (with_tx, mut with) = unbounded_channel();
        let (without_tx, mut without) = unbounded_channel();
        s.open_watch(Resource::Namespaces, Filter::default(), WatchFrom::Now, true, with_tx);
        s.open_watch(
            Resource::Namespaces,
            Filter::default(),
            WatchFrom::Now,
            false,
            without_tx,
        );
        s.watches.bookmark(1000);
        let got: Value = serde_json::from_slice(&drain(&mut with)[0]).unwrap();
        assert_eq!(got["object"]["kind"], json!("Namespace"));
        assert!(drain(&mut without).is_empty());
    }

    #[test]
    fn too_old_versions_get_one_expired_error() {
        let mut s = Store::new();
        s.apply(Resource::Pods, pod("a", "n1")); // 1001
        s.compact(); // 1002
        let (tx, _rx) = unbounded_channel();
        let start = s.open_watch(
            Resource::Pods,
            Filter::default(),
            WatchFrom::After(1001),
            true,
            tx.clone(),
        );
        assert!(start.id.is_none());
        let err: Value = serde_json::from_slice(&start.initial[0]).unwrap();
        assert_eq!(err["type"], json!("ERROR"));
        assert_eq!(err["object"]["code"], json!(410));
        assert_eq!(err["object"]["reason"], json!("Expired"));
        assert_eq!(err["object"]["message"], json!("too old resource version: 1001 (1002)"));
        assert_eq!(s.watches.count("pods"), 0);
        // The version a list returns right after compaction is still watchable.
        let ok = s.open_watch(Resource::Pods, Filter::default(), WatchFrom::After(1002), true, tx);
        assert!(ok.id.is_some() && ok.initial.is_empty());
    }

    #[test]
    fn closed_watches_are_not_counted_and_get_dropped() {
        let mut s = Store::new();
        let (tx, rx) = unbounded_channel();
        s.open_watch(Resource::Pods, Filter::default(), WatchFrom::Now, true, tx);
        drop(rx);
        assert_eq!(s.watches.count("pods"), 0);
        s.apply(Resource::Pods, pod("a", "n1"));
        assert!(s.watches.open.is_empty());
    }
}
