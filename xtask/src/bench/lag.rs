//! Write→read latency as the agent measures it: `shipper_read_lag_seconds`, the time from each read's
//! oldest line's own timestamp (written by the bench at write time) to the read, scraped from
//! `/metrics` and turned into quantiles the way Prometheus' `histogram_quantile` does (linear within
//! a bucket), so it is exact to the bucket bounds (0.5, 1, 2, 3, 4, 5, 7.5, 10 ms …).

use super::Latency;

/// p50, p99 and the bucket bound that holds the slowest read, in milliseconds.
pub fn scrape(port: u16) -> Result<Latency, String> {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let r = shipper_testkit::client::get(&url).map_err(|e| format!("{url}: {e}"))?;
    let text = String::from_utf8_lossy(&r.body).into_owned();
    let buckets = buckets(&text);
    if buckets.last().is_none_or(|b| b.1 == 0.0) {
        return Err("the agent reported no read lag (no lines with their own timestamps?)".into());
    }
    Ok(Latency {
        p50: quantile(&buckets, 0.5) * 1e3,
        p99: quantile(&buckets, 0.99) * 1e3,
        max: quantile(&buckets, 1.0) * 1e3,
    })
}

/// (upper bound in seconds, cumulative count) of each bucket, in order, +Inf last.
fn buckets(text: &str) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("shipper_read_lag_seconds_bucket{le=\""))
        .filter_map(|l| {
            let (le, rest) = l.split_once("\"}")?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, rest.trim().parse().ok()?))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

fn quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let total = buckets.last().map_or(0.0, |b| b.1);
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank && count > lower.1 {
            if le.is_infinite() {
                return lower.0;
            }
            return lower.0 + (le - lower.0) * (rank - lower.1) / (count - lower.1);
        }
        lower = (le, count);
    }
    lower.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_buckets_like_prometheus() {
        let text = "# HELP x\nshipper_read_lag_seconds_bucket{le=\"0.001\"} 50\n\
                    shipper_read_lag_seconds_bucket{le=\"0.002\"} 90\n\
                    shipper_read_lag_seconds_bucket{le=\"0.005\"} 100\n\
                    shipper_read_lag_seconds_bucket{le=\"+Inf\"} 100\nshipper_read_lag_seconds_count 100\n";
        let b = buckets(text);
        assert_eq!(b.len(), 4);
        assert!((quantile(&b, 0.5) - 0.001).abs() < 1e-12);
        // 99th of 100: 9 of the 10 reads between 2 and 5 ms.
        assert!((quantile(&b, 0.99) - 0.0047).abs() < 1e-9);
        assert!((quantile(&b, 1.0) - 0.005).abs() < 1e-12);
    }
}
