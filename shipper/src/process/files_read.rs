//! What of a compiled pipeline a config reload compares besides the config text: the files its
//! stages read. A target whose geoip database changed on disk is then a changed target, and its
//! files get stages reading the new database, even when the config is the same.

use super::pipeline::{Pipeline, Stage};

impl Pipeline {
    /// The database files its geoip stages read, each as it was read (path, inode, size, time).
    pub fn files_read(&self) -> Vec<String> {
        let file = |(_, s): &(&'static str, Stage)| match s {
            Stage::Geoip(g) => g.file(),
            _ => None,
        };
        self.stages.iter().filter_map(file).collect()
    }
}
