//! `file_sd_configs` (Prometheus' and Promtail's file-based discovery): target group files name the
//! files to tail and their labels, and a change of those files is applied while the agent runs.

use crate::support::{wait_entries, write_tagged, Agent, Env};
use shipper_testkit::{Account, Format, LogWriter};

fn group(env: &Env, dir: &str, job: &str) -> String {
    format!(
        "- targets: [localhost]\n  labels:\n    __path__: {}\n    job: {job}\n",
        env.path(&format!("{dir}/*.log")).display()
    )
}

#[test]
fn target_files_name_what_is_tailed_and_their_changes_apply_while_running() {
    let env = Env::new();
    let sd = env.path("sd/targets.yaml");
    std::fs::write(&sd, group(&env, "a", "a-logs")).unwrap();
    // The harness's target names no file; its file_sd_configs (the setting this test is about,
    // read every second) name them.
    let extra = format!(
        "    file_sd_configs:\n      - files: [{}]\n        refresh_interval: 1s\n",
        env.path("sd/*.yaml").display()
    );
    let agent = Agent::start(&env.config("none/*.log", &extra));
    let mut a = LogWriter::create(env.path("a/0.log"), Format::Cri).unwrap();
    write_tagged(&mut a, 0, 0..500);
    wait_entries(&env, &agent, 500, 30);

    // A second group added to the file: its files are tailed too, with its labels.
    std::fs::write(&sd, group(&env, "a", "a-logs") + &group(&env, "b", "b-logs")).unwrap();
    let mut b = LogWriter::create(env.path("b/0.log"), Format::Cri).unwrap();
    write_tagged(&mut b, 1, 0..500);
    write_tagged(&mut a, 0, 500..1_000);
    wait_entries(&env, &agent, 1_500, 30);
    std::thread::sleep(std::time::Duration::from_millis(500));

    let streams = env.loki.streams();
    for (job, file) in [("a-logs", "a/0.log"), ("b-logs", "b/0.log")] {
        let labels = format!(
            "{{filename=\"{}\", job=\"{job}\", stream=\"stdout\"}}",
            env.path(file).display()
        );
        assert!(streams.contains_key(&labels), "no {labels} in {:?}", streams.keys());
    }
    let account = Account::from_streams(&streams, [(0, 1_000), (1, 500)]);
    assert!(account.is_exact(), "{account}");
    assert!(
        agent.log().contains("file_sd_configs: the target files changed"),
        "{}",
        agent.log_tail()
    );
    agent.stop();
}
