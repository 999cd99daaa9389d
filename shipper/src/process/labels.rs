//! The labels of lines that stages changed: the file's labels with the line's label changes applied,
//! fitted to Loki's limits, rendered once per distinct result and shared (an `Arc<str>` per stream,
//! like the file's own).

use super::config::LabelLimits;
use super::LabelOp;
use crate::labels::{render as render_labels, StreamLabels};
use crate::parse::StreamKind;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

/// Distinct label sets remembered per file; more are rendered again (a stage that turns a
/// high-cardinality value into a label is the user's problem, but not an unbounded cache).
const CACHE_MAX: usize = 4096;

/// What fitting a label set to the limits removed or cut.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fitted {
    /// Labels removed: over `max_label_names_per_series`, or a name over `max_label_name_length`.
    pub dropped: u64,
    /// Values cut to `max_label_value_length`.
    pub cut: u64,
}

/// Makes a label set acceptable to Loki. Names longer than the limit are removed; values longer
/// than the limit are cut at a character boundary; over the count limit, labels that stages added
/// (not in `keep_first`) go first, last-named first, then the file's own except the ones Kubernetes
/// queries use most.
pub fn fit(
    labels: &mut BTreeMap<String, String>,
    limits: &LabelLimits,
    keep_first: Option<&BTreeMap<String, String>>,
) -> Fitted {
    let mut fitted = Fitted::default();
    labels.retain(|k, _| {
        let ok = k.len() <= limits.max_label_name_length;
        fitted.dropped += u64::from(!ok);
        ok
    });
    for v in labels.values_mut() {
        if v.len() > limits.max_label_value_length {
            let mut at = limits.max_label_value_length;
            while !v.is_char_boundary(at) {
                at -= 1;
            }
            v.truncate(at);
            fitted.cut += 1;
        }
    }
    const PRECIOUS: [&str; 6] = ["namespace", "pod", "container", "app", "job", "stream"];
    while labels.len() > limits.max_label_names_per_series.max(1) {
        let added = labels
            .keys()
            .rev()
            .find(|k| keep_first.is_some_and(|base| !base.contains_key(*k)))
            .cloned();
        let victim = added
            .or_else(|| labels.contains_key("filename").then(|| "filename".to_string()))
            .or_else(|| labels.keys().rev().find(|k| !PRECIOUS.contains(&k.as_str())).cloned())
            .or_else(|| labels.keys().next_back().cloned());
        let Some(victim) = victim else { break };
        labels.remove(&victim);
        fitted.dropped += 1;
    }
    fitted
}

/// The label sets rendered for one hash of (stream kind, label changes).
type Slot = Vec<(StreamKind, Vec<LabelOp>, Arc<str>)>;

/// Rendered label strings of one file's lines whose stages changed their labels.
#[derive(Default)]
pub struct LabelCache {
    /// The file labels these were built from (a pod metadata change replaces them).
    base: Option<Arc<StreamLabels>>,
    map: crate::IdMap<u64, Slot>,
    len: usize,
    hasher: foldhash::fast::RandomState,
}

impl LabelCache {
    /// The label string of a line of `kind` from a file labelled `base`, after `ops`.
    pub fn get(
        &mut self,
        base: &Arc<StreamLabels>,
        kind: StreamKind,
        ops: &[LabelOp],
        limits: &LabelLimits,
        fitted: &mut Fitted,
    ) -> Arc<str> {
        if ops.is_empty() {
            return base.for_kind(kind).clone();
        }
        if !self.base.as_ref().is_some_and(|b| Arc::ptr_eq(b, base)) || self.len >= CACHE_MAX {
            self.map.clear();
            self.len = 0;
            self.base = Some(base.clone());
        }
        let mut h = self.hasher.build_hasher();
        (kind as u8).hash(&mut h);
        ops.hash(&mut h);
        let slot = self.map.entry(h.finish()).or_default();
        if let Some((_, _, s)) = slot.iter().find(|(k, o, _)| *k == kind && o.as_slice() == ops) {
            return s.clone();
        }
        let mut labels = base.labels().clone();
        if kind != StreamKind::Unknown {
            labels.insert("stream".into(), kind.as_str().into());
        }
        apply(&mut labels, ops);
        *fitted = {
            let f = fit(&mut labels, limits, Some(base.labels()));
            Fitted {
                dropped: fitted.dropped + f.dropped,
                cut: fitted.cut + f.cut,
            }
        };
        let rendered: Arc<str> = Arc::from(render_labels(&labels));
        slot.push((kind, ops.to_vec(), rendered.clone()));
        self.len += 1;
        rendered
    }
}

/// Applies label changes in order. An empty value removes the label (Loki has no empty labels).
pub fn apply(labels: &mut BTreeMap<String, String>, ops: &[LabelOp]) {
    for op in ops {
        match op {
            LabelOp::Set(name, value) if value.is_empty() => {
                labels.remove(&**name);
            }
            LabelOp::Set(name, value) => {
                labels.insert(name.to_string(), value.clone());
            }
            LabelOp::Drop(names) => {
                for n in names.iter() {
                    labels.remove(n);
                }
            }
            LabelOp::Allow(names) => labels.retain(|k, _| names.contains(k)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn ops_apply_in_order() {
        let mut l = map(&[("namespace", "ns"), ("pod", "p"), ("filename", "/f")]);
        apply(
            &mut l,
            &[
                LabelOp::Set("level".into(), "info".into()),
                LabelOp::Drop(Arc::from(vec!["filename".to_string()])),
                LabelOp::Set("pod".into(), String::new()),
                LabelOp::Allow(Arc::from(vec!["namespace".to_string(), "level".to_string()])),
            ],
        );
        assert_eq!(l, map(&[("level", "info"), ("namespace", "ns")]));
    }

    #[test]
    fn fit_drops_added_labels_first_then_filename() {
        let limits = LabelLimits {
            max_label_names_per_series: 4,
            max_label_name_length: 9,
            max_label_value_length: 5,
        };
        let base = map(&[
            ("namespace", "ns"),
            ("pod", "p"),
            ("filename", "/var/log/x"),
            ("job", "j"),
        ]);
        let mut l = base.clone();
        l.insert("level".into(), "info".into());
        l.insert("zone".into(), "a".into());
        l.insert("way_too_long_name".into(), "x".into());
        let f = fit(&mut l, &limits, Some(&base));
        assert_eq!(f, Fitted { dropped: 3, cut: 1 });
        // Over the count: the added labels go first (zone, then level); the long name went already.
        assert_eq!(
            l,
            map(&[("filename", "/var/"), ("job", "j"), ("namespace", "ns"), ("pod", "p")])
        );
        let mut v = map(&[("a", "ééé")]);
        let f = fit(&mut v, &limits, None);
        assert_eq!((f.cut, v["a"].as_str()), (1, "éé"));
    }

    #[test]
    fn cache_renders_once_and_follows_new_base() {
        let base = Arc::new(StreamLabels::new(&map(&[("namespace", "ns")])));
        let limits = LabelLimits::default();
        let mut c = LabelCache::default();
        let mut fitted = Fitted::default();
        let ops = vec![LabelOp::Set("level".into(), "warn".into())];
        let a = c.get(&base, StreamKind::Stderr, &ops, &limits, &mut fitted);
        assert_eq!(&*a, r#"{level="warn", namespace="ns", stream="stderr"}"#);
        let b = c.get(&base, StreamKind::Stderr, &ops, &limits, &mut fitted);
        assert!(Arc::ptr_eq(&a, &b));
        let plain = c.get(&base, StreamKind::Stdout, &[], &limits, &mut fitted);
        assert!(Arc::ptr_eq(&plain, base.for_kind(StreamKind::Stdout)));
        let base2 = Arc::new(StreamLabels::new(&map(&[("namespace", "ns"), ("app", "a")])));
        let d = c.get(&base2, StreamKind::Stderr, &ops, &limits, &mut fitted);
        assert_eq!(&*d, r#"{app="a", level="warn", namespace="ns", stream="stderr"}"#);
        assert_eq!(fitted, Fitted::default());
    }
}
