//! What tests need to talk to the agent and the API server over HTTP: a free port to give them,
//! and values read from Prometheus' text format (their `/metrics`).

/// A TCP port on 127.0.0.1 that nothing listens on right now, and that no fake server of this
/// process had or will have (one that is down may not be listening).
pub fn free_port() -> u16 {
    crate::net::bind_new_port("free_port")
        .local_addr()
        .map(|a| a.port())
        .expect("a free port")
}

/// The value of `series` (a name with its labels exactly as served, e.g.
/// `shipper_pipeline_dropped_lines_total{reason="drop_stage"}`), summed over the lines that
/// carry it; None when none does.
pub fn series(text: &str, series: &str) -> Option<f64> {
    let mut found = None;
    for value in text
        .lines()
        .filter_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .filter_map(|v| v.split_whitespace().next()?.parse::<f64>().ok())
    {
        *found.get_or_insert(0.0) += value;
    }
    found
}

/// The sum of every series of the family `name` (whatever their labels; not `name_bucket` or
/// other families that start with it).
pub fn family_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP a_total A.\na_total{r=\"x\"} 2\na_total{r=\"y\"} 3\na_total_bucket{le=\"1\"} 9\nb 1.5\n";

    #[test]
    fn series_and_families() {
        assert_eq!(series(TEXT, "a_total{r=\"x\"}"), Some(2.0));
        assert_eq!(series(TEXT, "b"), Some(1.5));
        assert_eq!(series(TEXT, "c"), None);
        assert_eq!(family_sum(TEXT, "a_total"), 5.0);
        assert_ne!(free_port(), 0);
    }
}
