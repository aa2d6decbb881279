//! The one reader of `/metrics` for tests: counters such as backend calls, by any of their
//! labels.

/// The backend calls `metrics` (a `/metrics` text) counts in the series whose labels
/// include every one of `labels`: `&[("action", "StopInstances"), ("outcome", "ok")]`, or
/// `&[]` for every call. The series' labels are provider, action, region and outcome.
pub fn backend_calls(metrics: &str, labels: &[(&str, &str)]) -> u64 {
    counter(metrics, "overcast_backend_calls_total", labels)
}

/// The sum of the counter `name` over its series whose labels include every one of
/// `labels`, e.g. `counter(text, "overcast_backend_attempts_total", &[("outcome", "ok")])`.
pub fn counter(metrics: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    let prefix = format!("{name}{{");
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix(prefix.as_str()))
        .filter_map(|line| line.split_once('}'))
        .filter(|(series, _)| {
            let present = series_labels(series);
            labels.iter().all(|wanted| present.contains(wanted))
        })
        .map(|(_, value)| value.trim().parse::<u64>().unwrap())
        .sum()
}

/// `key="value"` pairs of a series, as written by the Prometheus text format (overcast's
/// label values hold no quotes).
fn series_labels(series: &str) -> Vec<(&str, &str)> {
    let mut labels = vec![];
    let mut rest = series;
    while let Some((key, after)) = rest.split_once("=\"") {
        let Some((value, tail)) = after.split_once('"') else {
            break;
        };
        labels.push((key.trim_start_matches(',').trim(), value));
        rest = tail;
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# TYPE overcast_backend_calls_total counter
overcast_backend_calls_total{action="StopInstances",outcome="ok",provider="aws",region="eu-west-1"} 2
overcast_backend_calls_total{action="StopInstances",outcome="error",provider="aws",region="us-east-1"} 1
overcast_backend_calls_total{action="DescribeInstances",outcome="ok",provider="aws",region="eu-west-1"} 7
overcast_http_requests_total{method="GET",route="/metrics",status="200"} 3
"#;

    #[test]
    fn calls_are_summed_over_the_series_that_have_every_label() {
        assert_eq!(backend_calls(TEXT, &[]), 10);
        assert_eq!(backend_calls(TEXT, &[("action", "StopInstances")]), 3);
        assert_eq!(
            backend_calls(TEXT, &[("action", "StopInstances"), ("outcome", "ok")]),
            2
        );
        assert_eq!(
            backend_calls(
                TEXT,
                &[("action", "StopInstances"), ("region", "us-east-1")]
            ),
            1
        );
        assert_eq!(backend_calls(TEXT, &[("action", "Stop")]), 0);
    }
}
