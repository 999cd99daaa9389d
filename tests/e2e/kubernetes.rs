//! `discovery: kubernetes`: every container log under kubelet's pods root is tailed and labelled from
//! its path (namespace, pod, container, job, node_name) without any API server.

use crate::support::{wait_entries, write_tagged, Agent, Env};
use shipper_testkit::{Account, Format, LogWriter};

#[test]
fn kubelet_logs_are_found_and_labelled_from_their_path() {
    let env = Env::new();
    let pods = env.path("pods");
    std::fs::create_dir_all(&pods).unwrap();
    let extra = format!(
        "discovery: kubernetes\nkubernetes:\n  pods_root: {}\n  node_name: node-a\n",
        pods.display()
    );
    // The static target matches nothing: every file comes from discovery.
    let agent = Agent::start(&env.config("none/*.log", &extra));
    let files = [
        ("monitoring_loki-0_0d1f-aa/loki/0.log", "monitoring", "loki-0", "loki"),
        ("default_web-7d9f_9c2e-bb/nginx/1.log", "default", "web-7d9f", "nginx"),
        (
            "default_web-7d9f_9c2e-bb/sidecar/0.log",
            "default",
            "web-7d9f",
            "sidecar",
        ),
    ];
    let mut writers: Vec<LogWriter> = files
        .iter()
        .map(|(p, ..)| LogWriter::create(pods.join(p), Format::Cri).unwrap())
        .collect();
    for (f, w) in writers.iter_mut().enumerate() {
        write_tagged(w, f as u32, 0..200);
    }
    wait_entries(&env, &agent, 600, 30);
    let streams = env.loki.streams();
    for (f, (p, namespace, pod, container)) in files.iter().enumerate() {
        let labels = format!(
            "{{container=\"{container}\", filename=\"{}\", job=\"{namespace}/{container}\", namespace=\"{namespace}\", node_name=\"node-a\", pod=\"{pod}\", stream=\"stdout\"}}",
            pods.join(p).display()
        );
        let lines = streams
            .get(&labels)
            .unwrap_or_else(|| panic!("no stream {labels} in {:?}", streams.keys()));
        let account = Account::from_streams(
            &std::collections::BTreeMap::from([(labels.clone(), lines.clone())]),
            [(f as u32, 200)],
        );
        assert_eq!(
            (account.lost(), account.duplicated(), account.out_of_order()),
            (0, 0, 0),
            "{account}"
        );
    }
    assert_eq!(streams.len(), 3, "{:?}", streams.keys());
    agent.stop();
}
