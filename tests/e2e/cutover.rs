//! A cutover from Promtail or Alloy: at its first start the agent takes over the positions of the
//! agent it replaces (`positions.import_from`), so each file's unread rest is shipped, and nothing
//! that agent had shipped is shipped again.

use crate::support::{write_tagged, Agent, Env};
use shipper_testkit::{parse_tag, Format, LogWriter};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const FILES: u32 = 3;
/// Lines the agent being replaced shipped from each file, then lines it left unread.
const SHIPPED: u64 = 600;
const UNREAD: u64 = 400;
/// Lines written once the new agent runs.
const LATER: u64 = 200;

/// Writes a half-read tree; returns each file's path, the offset after the lines the old agent
/// shipped, and its writer.
fn half_read_tree(env: &Env) -> Vec<(String, u64, LogWriter)> {
    (0..FILES)
        .map(|f| {
            let path = env.path(&format!("pods/ns_p{f}_u/c/0.log"));
            let mut w = LogWriter::create(&path, Format::Cri).unwrap();
            write_tagged(&mut w, f, 0..SHIPPED);
            let offset = std::fs::metadata(&path).unwrap().len();
            write_tagged(&mut w, f, SHIPPED..SHIPPED + UNREAD);
            (path.display().to_string(), offset, w)
        })
        .collect()
}

/// The agent with `import_from` under `positions:`, on the tree; then LATER lines more per file.
/// Returns the sequence numbers received per file once every expected line is there.
fn cut_over(env: &Env, tree: &mut [(String, u64, LogWriter)], import_from: &str) -> BTreeMap<u32, Vec<u64>> {
    let config = env.config("pods/*/*/*.log", "");
    let text = std::fs::read_to_string(&config).unwrap();
    let with_import = text.replacen(
        "positions:\n",
        &format!("positions:\n  import_from: {import_from}\n"),
        1,
    );
    std::fs::write(&config, with_import).unwrap();
    let agent = Agent::start(&config);
    for (f, (_, _, w)) in tree.iter_mut().enumerate() {
        write_tagged(w, f as u32, SHIPPED + UNREAD..SHIPPED + UNREAD + LATER);
    }
    let want = (UNREAD + LATER) * u64::from(FILES);
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.loki.entry_count() < want as usize && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // A little longer: duplicates would come now.
    std::thread::sleep(Duration::from_millis(500));
    let log = agent.log();
    assert!(log.contains("positions imported"), "{}", agent.log_tail());
    agent.stop();
    let mut got: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for entries in env.loki.streams().values() {
        for e in entries {
            let (f, s) = parse_tag(&e.line).expect("a tagged line");
            got.entry(f).or_default().push(s);
        }
    }
    got
}

fn assert_exactly_the_unread_rest(got: &BTreeMap<u32, Vec<u64>>) {
    for f in 0..FILES {
        let want: Vec<u64> = (SHIPPED..SHIPPED + UNREAD + LATER).collect();
        let have = got.get(&f).cloned().unwrap_or_default();
        assert!(
            have == want,
            "file {f}: {} lines from {:?} to {:?}; want exactly {SHIPPED}..{} once, in order",
            have.len(),
            have.first(),
            have.last(),
            SHIPPED + UNREAD + LATER
        );
    }
}

#[test]
fn promtail_positions_cut_over_with_no_gap_and_no_duplicates() {
    let env = Env::new();
    let mut tree = half_read_tree(&env);
    // Promtail's positions.yaml as it writes it: path → offset as a string, a journal cursor too.
    let mut yaml = String::from("positions:\n");
    for (path, offset, _) in &tree {
        yaml += &format!("  {path}: \"{offset}\"\n");
    }
    yaml += "  journal-systemd-journal: s=0a1b;i=2c;b=3d;m=4e;t=5f;x=60\n";
    let file = env.path("run/promtail/positions.yaml");
    std::fs::write(&file, yaml).unwrap();
    assert_exactly_the_unread_rest(&cut_over(&env, &mut tree, &format!("promtail:{}", file.display())));
}

#[test]
fn alloy_positions_cut_over_with_no_gap_and_no_duplicates() {
    let env = Env::new();
    let mut tree = half_read_tree(&env);
    // Alloy's loki.source.file positions.yml: {path, labels} → offset; a path under two label sets
    // resumes at the lower offset (here the same).
    let mut yaml = String::from("positions:\n");
    for (path, offset, _) in &tree {
        for labels in ["{job=\"pods\"}", "{job=\"pods\", team=\"a\"}"] {
            yaml += &format!("  ? path: {path}\n    labels: '{labels}'\n  : \"{offset}\"\n");
        }
    }
    let file = env.path("alloy/loki.source.file.pods/positions.yml");
    std::fs::write(&file, yaml).unwrap();
    assert_exactly_the_unread_rest(&cut_over(&env, &mut tree, &format!("alloy:{}", file.display())));
}
