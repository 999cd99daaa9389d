//! Docker's json-file layout, `<docker_root>/<id>/<id>-json.log` (and its rotated `.1`, `.2` …):
//! the path names only the container id; the pod comes from the metadata cache, which maps
//! `containerStatuses[].containerID` to its pod.

use std::path::Path;

/// The container id of a file in docker's layout: the directory name, when the file name starts
/// with it followed by `-json.log`.
pub fn container_id(path: &Path) -> Option<&str> {
    let id = path.parent()?.file_name()?.to_str()?;
    let name = path.file_name()?.to_str()?;
    let rest = name.strip_prefix(id)?;
    (!id.is_empty() && rest.starts_with("-json.log")).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_paths_name_their_container() {
        let id = "4f2c0a9e1d3b5c7e9f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70";
        let p = format!("/var/lib/docker/containers/{id}/{id}-json.log");
        assert_eq!(container_id(Path::new(&p)), Some(id));
        assert_eq!(container_id(Path::new(&format!("{p}.1"))), Some(id));
        for other in [
            "/var/lib/docker/containers/abc/def-json.log",
            "/x/abc/abc.log",
            "abc-json.log",
        ] {
            assert_eq!(container_id(Path::new(other)), None, "{other}");
        }
    }
}
