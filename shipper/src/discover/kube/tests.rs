use super::*;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

fn cache(cfg: &KubernetesConfig) -> (PodCache, Arc<AtomicUsize>) {
    let wakes = Arc::new(AtomicUsize::new(0));
    let w = wakes.clone();
    let c = PodCache::new(
        cfg,
        Box::new(move || {
            w.fetch_add(1, Ordering::Relaxed);
        }),
    );
    (c, wakes)
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn pod(c: &PodCache, uid: &str, ns: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> PodInfo {
    c.info(PodMeta {
        uid,
        namespace: ns,
        name: "p",
        labels: &map(labels),
        annotations: &map(annotations),
        containers: vec![("c".into(), format!("id-{uid}"))],
        images: vec![("c".into(), "example/c:1".into())],
        controller: None,
    })
}

#[test]
fn app_comes_from_the_usual_labels_in_order_and_sets_job() {
    let (c, _) = cache(&KubernetesConfig::default());
    for (labels, app) in [
        (
            vec![("app", "a"), ("app.kubernetes.io/name", "n"), ("k8s-app", "k")],
            Some("n"),
        ),
        (vec![("app", "a"), ("k8s-app", "k")], Some("a")),
        (vec![("k8s-app", "k")], Some("k")),
        (vec![("app", "")], None),
        (vec![], None),
    ] {
        assert_eq!(pod(&c, "u", "ns", &labels, &[]).app.as_deref(), app, "{labels:?}");
    }
    c.apply(pod(&c, "u1", "mon", &[("app", "loki")], &[]));
    let mut l = map(&[("namespace", "mon"), ("container", "c"), ("job", "mon/c")]);
    c.enrich("u1", &mut l);
    assert_eq!(l["app"], "loki");
    assert_eq!(l["job"], "mon/loki");
    let mut unknown = map(&[("job", "x/c")]);
    c.enrich("nobody", &mut unknown);
    assert_eq!(unknown, map(&[("job", "x/c")]));
}

#[test]
fn only_allowlisted_labels_and_annotations_are_mapped_with_sanitized_names() {
    let cfg = KubernetesConfig {
        pod_labels: map(&[("team", "team"), ("app.kubernetes.io/version", "")]),
        pod_annotations: map(&[("example.com/owner", "owner-name")]),
        ..Default::default()
    };
    let (c, _) = cache(&cfg);
    let p = pod(
        &c,
        "u1",
        "ns",
        &[
            ("team", "core"),
            ("app.kubernetes.io/version", "1.2"),
            ("secret-ish", "x"),
        ],
        &[("example.com/owner", "ann"), ("other", "y")],
    );
    assert_eq!(
        p.mapped,
        map(&[
            ("team", "core"),
            ("app_kubernetes_io_version", "1.2"),
            ("owner_name", "ann")
        ])
    );
    c.apply(p);
    // Mapped labels never replace the ones already there.
    let mut l = map(&[("team", "from-config")]);
    c.enrich("u1", &mut l);
    assert_eq!(l["team"], "from-config");
    assert_eq!(l["owner_name"], "ann");
    assert_eq!(sanitize_label_name("9lives.x/y"), "_9lives_x_y");
    assert_eq!(sanitize_label_name(""), "_");
}

#[test]
fn exclusion_by_annotation_and_namespace_lists() {
    let cfg = KubernetesConfig {
        exclude_namespaces: vec!["kube-system".into()],
        ..Default::default()
    };
    let (c, _) = cache(&cfg);
    assert!(c.excluded("kube-system", None));
    assert!(!c.excluded("default", Some("u1")));
    c.apply(pod(&c, "u1", "default", &[], &[(EXCLUDE_ANNOTATION, "True")]));
    assert!(c.excluded("default", Some("u1")));
    c.apply(pod(&c, "u2", "default", &[], &[(EXCLUDE_ANNOTATION, "false")]));
    assert!(!c.excluded("default", Some("u2")));
    c.set_namespace_excluded("default", true);
    assert!(c.excluded("default", Some("u2")));
    c.set_excluded_namespaces(HashSet::new());
    assert!(!c.excluded("default", Some("u2")));

    let only = KubernetesConfig {
        include_namespaces: vec!["apps".into()],
        ..Default::default()
    };
    let (c, _) = cache(&only);
    assert!(!c.excluded("apps", None));
    assert!(c.excluded("default", None));
}

#[test]
fn changes_name_the_pods_to_relabel_and_when_to_rescan() {
    let (c, wakes) = cache(&KubernetesConfig::default());
    assert_eq!(c.take_changes(), None);
    c.apply(pod(&c, "u1", "ns", &[("app", "a")], &[]));
    let ch = c.take_changes().expect("a new pod is a change");
    assert!(ch.pods.contains("u1"));
    assert!(ch.rescan, "a new container id may make a docker file eligible");
    assert_eq!(wakes.load(Ordering::Relaxed), 1);
    // The same metadata again (a resync) changes nothing and wakes nobody.
    c.apply(pod(&c, "u1", "ns", &[("app", "a")], &[]));
    assert_eq!(c.take_changes(), None);
    assert_eq!(wakes.load(Ordering::Relaxed), 1);
    c.apply(pod(&c, "u1", "ns", &[("app", "b")], &[]));
    let ch = c.take_changes().unwrap();
    assert!(ch.pods.contains("u1") && !ch.rescan, "{ch:?}");
    c.apply(pod(&c, "u1", "ns", &[("app", "b")], &[(EXCLUDE_ANNOTATION, "true")]));
    assert!(
        c.take_changes().unwrap().rescan,
        "exclusion lets go of the pod's files at the next scan"
    );
}

#[test]
fn deleted_pods_stay_for_the_grace_period() {
    let cfg = KubernetesConfig {
        deleted_pod_grace: crate::config::Dur(Duration::from_millis(50)),
        ..Default::default()
    };
    let (c, _) = cache(&cfg);
    c.apply(pod(&c, "u1", "ns", &[("app", "a")], &[]));
    c.apply(pod(&c, "u2", "ns", &[("app", "b")], &[]));
    c.delete("u1");
    // A relist that no longer has u2: deleted while the watch was down.
    c.retain_listed(&HashSet::new());
    assert_eq!(c.expire(), 2, "still within the grace period");
    assert_eq!(
        c.owner_of("id-u1").map(|o| (o.uid, o.container)),
        Some(("u1".into(), "c".into()))
    );
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(c.expire(), 0);
    assert!(c.owner_of("id-u1").is_none());
    let mut l = BTreeMap::new();
    c.enrich("u1", &mut l);
    assert!(l.is_empty());
}

#[test]
fn structured_metadata_names_the_pod_container_and_image() {
    let (c, _) = cache(&KubernetesConfig::default());
    let all = [PodField::PodUid, PodField::ContainerId, PodField::Image];
    // Before the pod is known only the uid (from the path) is.
    assert_eq!(
        c.metadata_of("u1", "c", &all),
        vec![("pod_uid".to_string(), "u1".to_string())]
    );
    c.apply(pod(&c, "u1", "ns", &[], &[]));
    assert_eq!(
        c.metadata_of("u1", "c", &all),
        vec![
            ("pod_uid".to_string(), "u1".to_string()),
            ("container_id".to_string(), "id-u1".to_string()),
            ("image".to_string(), "example/c:1".to_string()),
        ]
    );
    assert_eq!(c.metadata_of("u1", "other", &[PodField::Image]), vec![]);
    assert_eq!(c.metadata_of("u1", "c", &[]), vec![]);
}
