//! The objects, their history and resourceVersions: the etcd plus watch cache of the fake.
//!
//! One global counter gives every write its resourceVersion, like etcd's revision, so a client
//! may compare versions across resources and resume from any version it saw. Every write is
//! kept in `history` with the state it replaced; that is what lets a watch resume from an old
//! version (replay) and a list read an exact older version or continue a paginated list at its
//! first page's version (undo the writes after it), until [`Store::compact`] forgets it all.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;

use serde_json::{json, Value};

use super::select::Filter;
use super::status::ApiError;
use super::watch::Watches;

/// The resourceVersion of an empty store. Nonzero and not tiny, so that "0" (any version) and
/// small counts are never mistaken for a version.
const FIRST_RV: u64 = 1000;

/// The resources this fake serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Resource {
    Pods,
    Namespaces,
}

impl Resource {
    /// The plural in URLs, RBAC rules and error messages.
    pub fn plural(self) -> &'static str {
        match self {
            Resource::Pods => "pods",
            Resource::Namespaces => "namespaces",
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Resource::Pods => "Pod",
            Resource::Namespaces => "Namespace",
        }
    }
}

/// (namespace, name); the namespace is "" for cluster-scoped objects. Ordered like etcd keys,
/// which is the order lists return.
pub(crate) type Key = (String, String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChangeType {
    Added,
    Modified,
    Deleted,
}

/// One write. `object` is the state after it (for a delete: the last state, with the delete's
/// resourceVersion, which is what a `DELETED` event carries); `prev` the state before it.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub rv: u64,
    pub resource: Resource,
    pub key: Key,
    pub kind: ChangeType,
    pub object: Value,
    pub prev: Option<Value>,
}

/// Parameters of a list request that choose the version and the page.
#[derive(Clone, Debug, Default)]
pub(crate) struct ListOpts<'a> {
    /// `limit`; `None` or 0: everything.
    pub limit: Option<usize>,
    pub continue_token: Option<&'a str>,
    pub resource_version: Option<&'a str>,
    pub version_match: Option<&'a str>,
}

pub(crate) struct Store {
    rv: u64,
    pods: BTreeMap<Key, Value>,
    namespaces: BTreeMap<Key, Value>,
    /// Every write since the last compaction, oldest first.
    history: VecDeque<Change>,
    /// Versions below this are gone: watching or reading at them is 410 Expired.
    compacted: u64,
    pub watches: Watches,
}

impl Store {
    pub fn new() -> Store {
        Store {
            rv: FIRST_RV,
            pods: BTreeMap::new(),
            namespaces: BTreeMap::new(),
            history: VecDeque::new(),
            compacted: FIRST_RV,
            watches: Watches::default(),
        }
    }

    /// The newest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion still served.
    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    pub fn objects(&self, resource: Resource) -> &BTreeMap<Key, Value> {
        match resource {
            Resource::Pods => &self.pods,
            Resource::Namespaces => &self.namespaces,
        }
    }

    fn objects_mut(&mut self, resource: Resource) -> &mut BTreeMap<Key, Value> {
        match resource {
            Resource::Pods => &mut self.pods,
            Resource::Namespaces => &mut self.namespaces,
        }
    }

    /// Creates or replaces the object `obj` (keyed by its metadata namespace and name) at a new
    /// resourceVersion. The server owns `resourceVersion`; `creationTimestamp` and `uid` are
    /// kept from the previous state, or set when `obj` and the previous state lack them.
    ///
    /// Panics if `obj` has no `metadata.name`: that is a bug in the test.
    pub fn apply(&mut self, resource: Resource, mut obj: Value) {
        let key = key_of(&obj).expect("kubeapi: an applied object needs metadata.name");
        self.rv += 1;
        let rv = self.rv;
        let prev = self.objects(resource).get(&key).cloned();
        let old_meta = prev.as_ref().map(|p| &p["metadata"]);
        let inherit = |field: &str| old_meta.and_then(|m| m.get(field)).cloned();
        let created = inherit("creationTimestamp").unwrap_or_else(|| json!(now_rfc3339()));
        let uid = inherit("uid").unwrap_or_else(|| json!(format!("00000000-0000-4000-8000-{rv:012x}")));
        let meta = obj["metadata"].as_object_mut().expect("metadata is an object");
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        meta.entry("creationTimestamp").or_insert(created);
        meta.entry("uid").or_insert(uid);
        self.objects_mut(resource).insert(key.clone(), obj.clone());
        let kind = match prev {
            Some(_) => ChangeType::Modified,
            None => ChangeType::Added,
        };
        self.record(Change {
            rv,
            resource,
            key,
            kind,
            object: obj,
            prev,
        });
    }

    /// Deletes the object at `key` at a new resourceVersion, as if deleted with grace period 0.
    /// Returns false (and changes nothing) if there is no such object.
    pub fn delete(&mut self, resource: Resource, key: &Key) -> bool {
        let Some(prev) = self.objects_mut(resource).remove(key) else {
            return false;
        };
        self.rv += 1;
        let mut obj = prev.clone();
        let meta = &mut obj["metadata"];
        meta["resourceVersion"] = json!(self.rv.to_string());
        meta["deletionTimestamp"] = json!(now_rfc3339());
        meta["deletionGracePeriodSeconds"] = json!(0);
        self.record(Change {
            rv: self.rv,
            resource,
            key: key.clone(),
            kind: ChangeType::Deleted,
            object: obj,
            prev: Some(prev),
        });
        true
    }

    fn record(&mut self, change: Change) {
        self.watches.publish(&change);
        self.history.push_back(change);
    }

    /// Forgets the history, and moves the resourceVersion on by one (as writes to other
    /// resources do on a real cluster): every version a client has seen so far is then too old,
    /// while the version a new list returns is not.
    pub fn compact(&mut self) {
        self.rv += 1;
        self.compacted = self.rv;
        self.history.clear();
    }

    /// Writes after `rv`, oldest first. Complete only if `rv >= compacted()`.
    pub fn changes_after(&self, resource: Resource, rv: u64) -> impl Iterator<Item = &Change> {
        let start = self.history.partition_point(|c| c.rv <= rv);
        self.history.range(start..).filter(move |c| c.resource == resource)
    }

    /// The objects as they were at `rv` (`compacted() <= rv <= resource_version()`): the
    /// current ones with every later write undone.
    pub fn snapshot(&self, resource: Resource, rv: u64) -> BTreeMap<Key, Value> {
        let mut objects = self.objects(resource).clone();
        let later: Vec<&Change> = self.changes_after(resource, rv).collect();
        for change in later.into_iter().rev() {
            match &change.prev {
                Some(prev) => objects.insert(change.key.clone(), prev.clone()),
                None => objects.remove(&change.key),
            };
        }
        objects
    }

    /// Answers a list request: a `PodList`/`NamespaceList` of the matching objects at the
    /// version `opts` asks for, one page of it if `limit` is set.
    pub fn list(&self, resource: Resource, filter: &Filter, opts: &ListOpts<'_>) -> Result<Value, ApiError> {
        let (rv, after) = match opts.continue_token.filter(|t| !t.is_empty()) {
            Some(token) => {
                let (rv, key) = decode_continue(token)
                    .ok_or_else(|| ApiError::bad_request(format!("continue key is not valid: {token}")))?;
                if rv < self.compacted || rv > self.rv {
                    return Err(ApiError::continue_expired());
                }
                (rv, Some(key))
            }
            None => (self.list_version(opts)?, None),
        };
        let snapshot = self.snapshot(resource, rv);
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let limit = opts.limit.filter(|&l| l > 0).unwrap_or(usize::MAX);
        let (mut items, mut last, mut remaining) = (Vec::new(), None, 0u64);
        for (key, obj) in snapshot.range((lower, Bound::Unbounded)) {
            if !filter.matches(obj) {
                continue;
            }
            if items.len() < limit {
                items.push(without_type(obj));
                last = Some(key);
            } else {
                remaining += 1;
            }
        }
        let mut metadata = json!({ "resourceVersion": rv.to_string() });
        if let (true, Some(last)) = (remaining > 0, last) {
            metadata["continue"] = json!(encode_continue(rv, last));
            // The API server only counts what is left when it can do so cheaply, without selectors.
            if !filter.has_selectors() {
                metadata["remainingItemCount"] = json!(remaining);
            }
        }
        Ok(json!({
            "kind": format!("{}List", resource.kind()),
            "apiVersion": "v1",
            "metadata": metadata,
            "items": items,
        }))
    }

    /// The version a list without a continue token reads, per `resourceVersion` and
    /// `resourceVersionMatch` (the API server's rules: unset or "0" is the newest, `Exact` is
    /// that version or 410, anything else is "not older than", which here is the newest).
    fn list_version(&self, opts: &ListOpts<'_>) -> Result<u64, ApiError> {
        let rv = opts.resource_version.filter(|s| !s.is_empty());
        match (opts.version_match.filter(|s| !s.is_empty()), rv) {
            (None, None | Some("0")) => Ok(self.rv),
            (Some(_), None) => Err(ApiError::invalid(
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
            )),
            (Some("Exact"), Some("0")) => Err(ApiError::invalid(
                "resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            )),
            (Some("Exact"), Some(r)) => {
                let r = parse_rv(r)?;
                if r < self.compacted {
                    Err(ApiError::too_old(r, self.compacted))
                } else if r > self.rv {
                    Err(ApiError::too_large(r, self.rv))
                } else {
                    Ok(r)
                }
            }
            (None | Some("NotOlderThan"), Some(r)) => match parse_rv(r)? {
                r if r > self.rv => Err(ApiError::too_large(r, self.rv)),
                _ => Ok(self.rv),
            },
            (Some(other), _) => Err(ApiError::invalid(format!(
                "resourceVersionMatch: Unsupported value: \"{other}\": supported values: \"Exact\", \"NotOlderThan\""
            ))),
        }
    }
}

/// A resourceVersion parameter: decimal, like every version this server hands out.
pub(crate) fn parse_rv(rv: &str) -> Result<u64, ApiError> {
    rv.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))
}

pub(crate) fn key_of(obj: &Value) -> Option<Key> {
    let meta = &obj["metadata"];
    let name = meta["name"].as_str().filter(|n| !n.is_empty())?;
    Some((meta["namespace"].as_str().unwrap_or("").to_owned(), name.to_owned()))
}

/// List items without `kind` and `apiVersion`, as the API server encodes them: clients must
/// not depend on them there.
fn without_type(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(map) = obj.as_object_mut() {
        map.remove("kind");
        map.remove("apiVersion");
    }
    obj
}

/// The continue token: hex of `rv NUL namespace NUL name` (the version of the first page and
/// the last key returned). Opaque to clients, like the API server's base64 JSON.
fn encode_continue(rv: u64, (ns, name): &Key) -> String {
    format!("{rv}\0{ns}\0{name}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_continue(token: &str) -> Option<(u64, Key)> {
    if !token.len().is_multiple_of(2) || !token.is_ascii() {
        return None;
    }
    let bytes: Vec<u8> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16).ok())
        .collect::<Option<_>>()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.split('\0');
    let (rv, ns, name) = (parts.next()?, parts.next()?, parts.next()?);
    Some((rv.parse().ok()?, (ns.to_owned(), name.to_owned())))
}

/// Now, as Kubernetes writes timestamps (RFC 3339, whole seconds, UTC).
pub(crate) fn now_rfc3339() -> String {
    let secs = crate::time::now_nanos().div_euclid(1_000_000_000);
    crate::time::format_rfc3339(secs * 1_000_000_000, crate::time::TimeStyle::GoNano)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str, node: &str) -> Value {
        json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"namespace": ns, "name": name}, "spec": {"nodeName": node}})
    }

    fn names(list: &Value) -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    }

    fn list(store: &Store, filter: &Filter, opts: ListOpts<'_>) -> Result<Value, ApiError> {
        store.list(Resource::Pods, filter, &opts)
    }

    #[test]
    fn writes_get_increasing_versions_and_keep_identity() {
        let mut s = Store::new();
        s.apply(Resource::Pods, pod("ns", "a", "n1"));
        let first = s.objects(Resource::Pods)[&("ns".into(), "a".into())].clone();
        assert_eq!(first["metadata"]["resourceVersion"], json!("1001"));
        s.apply(Resource::Namespaces, json!({"metadata": {"name": "ns"}}));
        s.apply(Resource::Pods, pod("ns", "a", "n2"));
        let second = &s.objects(Resource::Pods)[&("ns".into(), "a".into())];
        assert_eq!(second["metadata"]["resourceVersion"], json!("1003"));
        assert_eq!(second["metadata"]["uid"], first["metadata"]["uid"]);
        assert_eq!(
            second["metadata"]["creationTimestamp"],
            first["metadata"]["creationTimestamp"]
        );
        assert!(s.delete(Resource::Pods, &("ns".into(), "a".into())));
        assert!(!s.delete(Resource::Pods, &("ns".into(), "a".into())));
        let kinds: Vec<_> = s.changes_after(Resource::Pods, 1001).map(|c| (c.rv, c.kind)).collect();
        assert_eq!(kinds, [(1003, ChangeType::Modified), (1004, ChangeType::Deleted)]);
        let deleted = s.changes_after(Resource::Pods, 1003).next().unwrap();
        assert_eq!(deleted.object["metadata"]["resourceVersion"], json!("1004"));
        assert_eq!(deleted.object["spec"]["nodeName"], json!("n2"));
    }

    #[test]
    fn list_filters_strips_types_and_reports_the_version() {
        let mut s = Store::new();
        s.apply(Resource::Pods, pod("b", "x", "n1"));
        s.apply(Resource::Pods, pod("a", "y", "n2"));
        s.apply(Resource::Pods, pod("a", "x", "n1"));
        let all = list(&s, &Filter::default(), ListOpts::default()).unwrap();
        assert_eq!(names(&all), ["x", "y", "x"], "sorted by namespace, then name");
        assert_eq!(all["kind"], json!("PodList"));
        assert_eq!(all["metadata"]["resourceVersion"], json!("1003"));
        assert!(all["items"][0].get("kind").is_none() && all["metadata"].get("continue").is_none());
        let f = Filter::parse(Resource::Pods, None, Some("spec.nodeName=n1"), None).unwrap();
        let n1 = list(&s, &f, ListOpts::default()).unwrap();
        assert_eq!(n1["items"][0]["metadata"]["namespace"], json!("a"));
        assert_eq!(n1["items"][1]["metadata"]["namespace"], json!("b"));
    }

    #[test]
    fn pagination_is_consistent_at_the_first_pages_version() {
        let mut s = Store::new();
        for name in ["a", "b", "c", "d", "e"] {
            s.apply(Resource::Pods, pod("ns", name, "n1"));
        }
        let f = Filter::default();
        let page = |token: Option<&str>, s: &Store| {
            let opts = ListOpts {
                limit: Some(2),
                continue_token: token,
                ..Default::default()
            };
            list(s, &f, opts).unwrap()
        };
        let p1 = page(None, &s);
        assert_eq!(names(&p1), ["a", "b"]);
        assert_eq!(p1["metadata"]["remainingItemCount"], json!(3));
        let token = p1["metadata"]["continue"].as_str().unwrap().to_owned();
        // Writes between pages do not show: the rest is read at the first page's version.
        s.apply(Resource::Pods, pod("ns", "bb", "n1"));
        assert!(s.delete(Resource::Pods, &("ns".into(), "d".into())));
        let p2 = page(Some(&token), &s);
        assert_eq!(names(&p2), ["c", "d"]);
        assert_eq!(p2["metadata"]["resourceVersion"], json!("1005"));
        let p3 = page(p2["metadata"]["continue"].as_str(), &s);
        assert_eq!(names(&p3), ["e"]);
        assert!(p3["metadata"].get("continue").is_none());
        // After compaction the snapshot is gone.
        s.compact();
        let opts = ListOpts {
            limit: Some(2),
            continue_token: Some(&token),
            ..Default::default()
        };
        assert_eq!(list(&s, &f, opts).unwrap_err().code, 410);
        let bad = ListOpts {
            continue_token: Some("zz"),
            ..Default::default()
        };
        assert_eq!(list(&s, &f, bad).unwrap_err().code, 400);
    }

    #[test]
    fn selectors_with_limit_leave_out_the_remaining_count() {
        let mut s = Store::new();
        for name in ["a", "b", "c"] {
            s.apply(Resource::Pods, pod("ns", name, "n1"));
        }
        let f = Filter::parse(Resource::Pods, None, Some("spec.nodeName=n1"), None).unwrap();
        let p = list(
            &s,
            &f,
            ListOpts {
                limit: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(p["metadata"]["continue"].is_string());
        assert!(p["metadata"].get("remainingItemCount").is_none());
    }

    #[test]
    fn exact_lists_read_old_versions_until_compaction() {
        let mut s = Store::new();
        s.apply(Resource::Pods, pod("ns", "a", "n1")); // 1001
        s.apply(Resource::Pods, pod("ns", "a", "n2")); // 1002
        s.apply(Resource::Pods, pod("ns", "b", "n1")); // 1003
        let exact = |s: &Store, rv: &'static str| {
            let opts = ListOpts {
                resource_version: Some(rv),
                version_match: Some("Exact"),
                ..Default::default()
            };
            list(s, &Filter::default(), opts)
        };
        let at1001 = exact(&s, "1001").unwrap();
        assert_eq!(names(&at1001), ["a"]);
        assert_eq!(at1001["items"][0]["spec"]["nodeName"], json!("n1"));
        assert_eq!(at1001["metadata"]["resourceVersion"], json!("1001"));
        assert_eq!(names(&exact(&s, "1003").unwrap()), ["a", "b"]);
        assert_eq!(exact(&s, "1004").unwrap_err().code, 504);
        assert_eq!(exact(&s, "999").unwrap_err().code, 410);
        assert_eq!(exact(&s, "0").unwrap_err().code, 422);
        s.compact();
        let gone = exact(&s, "1003").unwrap_err();
        assert_eq!((gone.code, gone.reason), (410, "Expired"));
        assert_eq!(gone.message, "too old resource version: 1003 (1004)");
        // A list without a version is at the compaction's version, which is still served.
        let now = list(&s, &Filter::default(), ListOpts::default()).unwrap();
        assert_eq!(now["metadata"]["resourceVersion"], json!("1004"));
        let not_older = ListOpts {
            resource_version: Some("1001"),
            version_match: Some("NotOlderThan"),
            ..Default::default()
        };
        assert_eq!(names(&list(&s, &Filter::default(), not_older).unwrap()), ["a", "b"]);
    }

    #[test]
    fn continue_tokens_round_trip() {
        let key = ("kube-system".to_owned(), "coredns-0".to_owned());
        assert_eq!(decode_continue(&encode_continue(42, &key)), Some((42, key)));
        assert_eq!(decode_continue("abc"), None);
    }
}
