//! Stages that hold stages: `match` (its stages for the lines a selector matches) and `branches`
//! (a copy of every line through each branch's stages, then to the branch's endpoints). Both are
//! compiled inline into the pipeline's one list of stages, so a line held inside them (multiline,
//! limit) resumes where it stopped.

use super::config::{BranchConfig, MatchAction, MatchConfig, StageConfig};
use super::pipeline::{Pipeline, Stage};
use super::routes::Routes;
use super::selector::Selector;

impl Pipeline {
    /// A `match` stage: its selector, then (`action: keep`) its own stages, which the lines it does
    /// not match skip.
    pub(super) fn compile_match(&mut self, c: &MatchConfig, key: &str) -> Result<(), String> {
        let selector = Selector::parse(&c.selector).map_err(|e| format!("{key}.selector: {e}"))?;
        if c.action == MatchAction::Drop {
            if !c.stages.is_empty() {
                return Err(format!(
                    "{key}.stages: a match with `action: drop` drops the lines; it has no stages"
                ));
            }
            let reason = c.drop_counter_reason.clone().unwrap_or_else(|| "match_stage".into());
            self.stages.push(("match", Stage::MatchDrop(selector, reason)));
            return Ok(());
        }
        if c.stages.is_empty() {
            return Err(format!(
                "{key}.stages: name the stages for the lines the selector matches"
            ));
        }
        let at = self.stages.len();
        self.stages.push(("match", Stage::Match(selector, 0)));
        self.compile(&keyed(&c.stages, key), None)?;
        let own = self.stages.len() - at - 1;
        if let Some((_, Stage::Match(_, skip))) = self.stages.get_mut(at) {
            *skip = own;
        }
        Ok(())
    }

    /// A `branches` stage: the fork, then each branch's stages followed by its route (the end of
    /// the line's way through the stages).
    pub(super) fn compile_branches(
        &mut self,
        c: &[BranchConfig],
        key: &str,
        routes: &Routes<'_>,
    ) -> Result<(), String> {
        if c.is_empty() {
            return Err(format!(
                "{key}: name at least one branch (`- clients: [...]` with its `stages`)"
            ));
        }
        let at = self.stages.len();
        self.stages.push(("branches", Stage::Branches(Vec::new())));
        let mut starts = Vec::with_capacity(c.len());
        for (i, b) in c.iter().enumerate() {
            let key = format!("{key}[{i}]");
            let clients = match routes.endpoints.mask(&b.clients, &format!("{key}.clients"))? {
                Some(mask) => Some(mask),
                None => routes.target,
            };
            starts.push(self.stages.len());
            self.compile(&keyed(&b.stages, &key), None)?;
            self.stages.push(("branches", Stage::Route(clients)));
        }
        if let Some((_, Stage::Branches(s))) = self.stages.get_mut(at) {
            *s = starts;
        }
        Ok(())
    }
}

/// Nested stages with their config paths (`<key>.stages[j]`).
fn keyed<'a>(stages: &'a [StageConfig], key: &str) -> Vec<(String, &'a StageConfig)> {
    stages
        .iter()
        .enumerate()
        .map(|(j, s)| (format!("{key}.stages[{j}]"), s))
        .collect()
}

#[cfg(test)]
#[path = "branches_tests.rs"]
mod tests;
