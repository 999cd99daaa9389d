//! Rotation helpers behave like kubelet, dockerd and logrotate `copytruncate`.

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use shipper_testkit::writer::gzip_file;
use shipper_testkit::{rotate_docker, Format, LogWriter};

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn kubelet_rotation_renames_with_a_timestamp_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let mut w = LogWriter::create(&path, Format::Raw).unwrap();
    w.write_line("stdout", "before").unwrap();
    let inode = fs::metadata(&path).unwrap().ino();
    let first = w.rotate_kubelet().unwrap();
    w.write_line("stdout", "after").unwrap();
    // Twice within a second: the name gets a counter.
    let second = w.rotate_kubelet().unwrap();
    w.write_line("stdout", "latest").unwrap();
    w.flush().unwrap();

    let suffix = first
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .strip_prefix("0.log.")
        .unwrap();
    assert_eq!(suffix.len(), "20261125-100000".len(), "{suffix}");
    assert!(suffix
        .chars()
        .enumerate()
        .all(|(i, c)| if i == 8 { c == '-' } else { c.is_ascii_digit() }));
    assert_eq!(fs::metadata(&first).unwrap().ino(), inode, "renamed, not copied");
    assert_eq!(read(&first), "before\n");
    if second.to_str().unwrap().ends_with(".1") {
        assert_eq!(second, PathBuf::from(format!("{}.1", first.display())));
    }
    assert_eq!(read(&second), "after\n");
    assert_eq!(read(&path), "latest\n");
    assert_ne!(fs::metadata(&path).unwrap().ino(), inode);

    // kubelet compresses older rotated files.
    let gz = gzip_file(&first).unwrap();
    assert!(!first.exists());
    let mut text = String::new();
    flate2::read::GzDecoder::new(fs::File::open(&gz).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "before\n");
}

#[test]
fn docker_rotation_shifts_numbered_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let mut w = LogWriter::create(&path, Format::Raw).unwrap();
    for gen in 0..3 {
        w.write_line("stdout", &format!("gen {gen}")).unwrap();
        assert_eq!(w.rotate_docker().unwrap(), dir.path().join("c-json.log.1"));
    }
    w.write_line("stdout", "current").unwrap();
    w.flush().unwrap();
    assert_eq!(
        names(dir.path()),
        ["c-json.log", "c-json.log.1", "c-json.log.2", "c-json.log.3"]
    );
    assert_eq!(read(&path), "current\n");
    assert_eq!(read(&dir.path().join("c-json.log.1")), "gen 2\n");
    assert_eq!(read(&dir.path().join("c-json.log.3")), "gen 0\n");

    // The free function works on a path the test does not hold open.
    rotate_docker(&path).unwrap();
    assert_eq!(read(&path), "");
    assert_eq!(read(&dir.path().join("c-json.log.4")), "gen 0\n");
}

#[test]
fn copytruncate_keeps_the_inode_and_appends_at_the_new_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let mut w = LogWriter::create(&path, Format::Raw).unwrap();
    w.write_line("stdout", "old 1\nold 2").unwrap();
    let inode = fs::metadata(&path).unwrap().ino();
    let copy = w.copytruncate().unwrap();
    w.write_line("stdout", "new").unwrap();
    w.flush().unwrap();
    assert_eq!(read(&copy), "old 1\nold 2\n");
    assert_eq!(fs::metadata(&path).unwrap().ino(), inode);
    // O_APPEND: no hole of zeros where the old content was.
    assert_eq!(read(&path), "new\n");
}

#[test]
fn delete_unlinks_while_the_writer_keeps_its_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let mut w = LogWriter::create(&path, Format::Cri).unwrap();
    w.write_line("stdout", "x").unwrap();
    let reader = fs::File::open(&path).unwrap();
    w.delete().unwrap();
    assert!(!path.exists());
    w.write_line("stdout", "after delete").unwrap();
    w.flush().unwrap();
    let mut text = String::new();
    (&reader).read_to_string(&mut text).unwrap();
    assert!(text.ends_with(" stdout F after delete\n"), "{text}");
    // Reopening creates a fresh file.
    w.reopen().unwrap();
    w.write_line("stdout", "fresh").unwrap();
    w.flush().unwrap();
    assert!(read(&path).ends_with(" stdout F fresh\n"));
}

#[test]
fn kubelet_retiring_rotation_keeps_max_files_and_gzips_all_but_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let mut w = LogWriter::create(&path, Format::Raw).unwrap();
    let mut rotated = Vec::new();
    for gen in 0..6 {
        w.write_line("stdout", &format!("gen {gen}")).unwrap();
        rotated.push(w.rotate_kubelet_retiring(5).unwrap());
    }
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // As kubelet's rotateLog: before each rotation it keeps the newest max_files - 2 rotated
    // files and gzips them all, then renames 0.log. So 0.log, the newest rotated file as it is,
    // three older ones gzipped: five files at most.
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(names.contains(&"0.log".to_string()));
    assert_eq!(read(&rotated[5]), "gen 5\n");
    let gz: Vec<&String> = names.iter().filter(|n| n.ends_with(".gz")).collect();
    assert_eq!(gz.len(), 3, "{names:?}");
    assert!(!rotated[4].exists() && !rotated[3].exists() && !rotated[0].exists());
    let gzipped = |r: &Path| {
        dir.path()
            .join(format!("{}.gz", r.file_name().unwrap().to_string_lossy()))
    };
    assert!(!gzipped(&rotated[1]).exists() && gzipped(&rotated[2]).exists());
    let mut text = String::new();
    flate2::read::GzDecoder::new(fs::File::open(gzipped(&rotated[3])).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "gen 3\n");
}
