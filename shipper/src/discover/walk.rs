//! Expanding a glob by walking its directories once, level by level: what `glob::glob` returns, plus
//! every directory on the way (the ones to watch), from one listing of each directory. Entry types
//! come from the listing itself (`d_type`), so only symlinks cost a `stat`. A scan of 1,000 pod
//! directories lists each once instead of listing them again to find the directories to watch.

use super::listing::Listings;
use std::path::{Component, Path, PathBuf};

/// What a walk found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Walked {
    /// Entries the glob matches, in glob's order (each directory's entries sorted by name); not
    /// checked further (the caller stats them).
    pub matches: Vec<PathBuf>,
    /// The glob's fixed base and every directory matched on the way to the matches.
    pub dirs: Vec<PathBuf>,
}

/// Whether a glob component has wildcards (else it names one entry literally).
pub(super) fn is_wild(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Walks `pattern`. None when the walk does not apply — a `**` pattern, one glob cannot parse, or
/// one whose fixed base is not a directory — and the caller expands it with `glob` instead.
pub(super) fn walk(pattern: &str, listings: &mut Listings) -> Option<Walked> {
    if pattern.contains("**") {
        return None;
    }
    let comps: Vec<Component<'_>> = Path::new(pattern).components().collect();
    let fixed = comps
        .iter()
        .take_while(|c| !is_wild(&c.as_os_str().to_string_lossy()))
        .count();
    if fixed == comps.len() {
        // No wildcard at all: the path itself, if it exists.
        return None;
    }
    let base: PathBuf = comps[..fixed].iter().collect();
    if !base.is_dir() {
        return None;
    }
    let rest: Vec<String> = comps[fixed..]
        .iter()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let patterns: Vec<Option<glob::Pattern>> = rest
        .iter()
        .map(|c| {
            if is_wild(c) {
                glob::Pattern::new(c).map(Some)
            } else {
                Ok(None)
            }
        })
        .collect::<Result<_, _>>()
        .ok()?;
    let mut walked = Walked::default();
    descend(&base, &rest, &patterns, listings, &mut walked);
    Some(walked)
}

/// Depth first, each directory's entries in name order: the matches come in glob's order and the
/// directories in `Path`'s order (a parent before what is below it), so making them a set is cheap.
fn descend(
    dir: &Path,
    rest: &[String],
    patterns: &[Option<glob::Pattern>],
    listings: &mut Listings,
    walked: &mut Walked,
) {
    walked.dirs.push(dir.to_path_buf());
    let (Some(comp), Some(pattern)) = (rest.first(), patterns.first()) else {
        return;
    };
    let last = rest.len() == 1;
    let Some(pat) = pattern else {
        let path = dir.join(comp);
        if last {
            if path.symlink_metadata().is_ok() {
                walked.matches.push(path);
            }
        } else if path.is_dir() {
            descend(&path, &rest[1..], &patterns[1..], listings, walked);
        }
        return;
    };
    let Some(entries) = listings.entries(dir) else {
        // Unreadable or gone: skipped, as glob does; seen again at the next scan.
        return;
    };
    for (name, kind) in entries.iter().filter(|e| pat.matches(&e.0.to_string_lossy())) {
        let path = dir.join(name);
        if last {
            walked.matches.push(path);
            continue;
        }
        let is_dir = match kind {
            Some(k) if k.is_symlink() => path.is_dir(),
            Some(k) => k.is_dir(),
            None => path.is_dir(),
        };
        if is_dir {
            descend(&path, &rest[1..], &patterns[1..], listings, walked);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The walk finds what `glob` finds, in the same order, and the directories the old two-pass
    /// scan watched.
    #[test]
    fn matches_glob_and_lists_the_directories_on_the_way() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for p in [
            "pods/ns_a_1/c1/0.log",
            "pods/ns_a_1/c1/1.log",
            "pods/ns_a_1/c2/0.log",
            "pods/ns_b_2/c1/0.log",
            "pods/ns_b_2/c1/0.log.20261130-000000",
            "pods/.hidden_3/c/0.log",
            "pods/ns_c_3/app/0.log",
        ] {
            let f = root.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, b"x\n").unwrap();
        }
        std::fs::create_dir_all(root.join("pods/ns_empty_4/c")).unwrap();
        std::fs::write(root.join("pods/not_a_dir"), b"").unwrap();
        // A symlinked pod directory is followed, as glob follows it.
        std::os::unix::fs::symlink(root.join("pods/ns_a_1"), root.join("pods/ns_link_5")).unwrap();
        // A dangling symlink where a file is expected is returned (the caller reports it).
        std::os::unix::fs::symlink(root.join("nowhere"), root.join("pods/ns_b_2/c1/9.log")).unwrap();
        let root_s = root.display().to_string();
        for pattern in [
            format!("{root_s}/pods/*/*/*.log"),
            format!("{root_s}/pods/*/c1/*.log"),
            format!("{root_s}/pods/ns_[ab]_?/*/0.log*"),
            format!("{root_s}/pods/*/*/0.log"),
        ] {
            let w = walk(&pattern, &mut Listings::default()).unwrap();
            let globbed: Vec<PathBuf> = glob::glob(&pattern).unwrap().flatten().collect();
            assert_eq!(w.matches, globbed, "{pattern}");
            let mut expected = BTreeSet::new();
            super::super::watch_dirs(&pattern, &mut expected);
            assert_eq!(w.dirs.into_iter().collect::<BTreeSet<_>>(), expected, "{pattern}");
        }
        let l = &mut Listings::default();
        assert!(walk(&format!("{root_s}/missing/*/*.log"), l).is_none());
        assert!(walk(&format!("{root_s}/pods/**/*.log"), l).is_none());
        assert!(walk(&format!("{root_s}/pods/ns_a_1/c1/0.log"), l).is_none());
    }
}
