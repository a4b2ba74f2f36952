//! Prometheus's JSON APIs that tools read from a scraper, answered from
//! what relay holds (`crate::status`), in Prometheus's shapes:
//! `/api/v1/targets` (every field Prometheus 2.42 gives an active target,
//! and 3.x's `scrapePool` on dropped ones and `droppedTargetCounts`),
//! `/api/v1/status/config` (secrets `<secret>`), `/api/v1/status/buildinfo`
//! and `/api/v1/status/tsdb` (cardinality over every target's series).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::{json, Value};

use crate::status::cardinality::{Postings, Stat, TopLists};
use crate::status::{Status, TargetStatus};

/// How long a request waits for a target's loop to hand over its series
/// (a scrape in flight holds them).
pub const POSTINGS_WAIT: Duration = Duration::from_secs(5);

/// Prometheus's most entries per list of `/api/v1/status/tsdb`.
const MAX_TSDB_LIMIT: usize = 10_000;

/// An API answer: HTTP status and the JSON body.
pub struct Answer {
    /// 200, or 400 for a bad parameter.
    pub status: u16,
    /// `{"status": ..., "data": ...}` or Prometheus's error object.
    pub body: String,
}

/// `{"status":"success","data":...}`.
fn success(data: impl Serialize) -> Answer {
    Answer {
        status: 200,
        body: json!({"status": "success", "data": data}).to_string(),
    }
}

/// Prometheus's `bad_data` error (400).
fn bad_data(message: &str) -> Answer {
    Answer {
        status: 400,
        body: json!({"status": "error", "errorType": "bad_data", "error": message}).to_string(),
    }
}

/// The value of query parameter `name` (percent-decoded), if given.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    let query = query?;
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn label_map(pairs: &[(String, String)]) -> BTreeMap<&str, &str> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// `/api/v1/targets`, with `state` (`active`, `dropped`, `any`, or none:
/// both) and `scrapePool` as Prometheus reads them.
pub fn targets(status: &Status, query: Option<&str>) -> Answer {
    let state = query_param(query, "state")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let pool = query_param(query, "scrapePool").unwrap_or_default();
    let show_active = matches!(state.as_str(), "" | "any" | "active");
    let show_dropped = matches!(state.as_str(), "" | "any" | "dropped");
    let in_pool = |job: &str| pool.is_empty() || job == pool;
    let mut active = Vec::new();
    if show_active {
        let mut targets = status.targets();
        targets.sort_by(|a, b| a.info.job.cmp(&b.info.job));
        for t in targets.iter().filter(|t| in_pool(&t.info.job)) {
            active.push(active_target(t));
        }
    }
    let config = status.config();
    let mut dropped = Vec::new();
    let mut counts = Value::Null;
    if show_dropped {
        let mut by_pool: BTreeMap<&str, usize> =
            config.jobs.iter().map(|j| (j.as_str(), 0)).collect();
        for d in &config.dropped {
            *by_pool.entry(d.job.as_str()).or_default() += 1;
        }
        counts = json!(by_pool);
        let mut listed: Vec<_> = config.dropped.iter().filter(|d| in_pool(&d.job)).collect();
        listed.sort_by(|a, b| a.job.cmp(&b.job));
        for d in listed {
            dropped.push(json!({
                "discoveredLabels": label_map(&d.discovered),
                "scrapePool": d.job,
            }));
        }
    }
    success(json!({
        "activeTargets": active,
        "droppedTargets": dropped,
        "droppedTargetCounts": counts,
    }))
}

fn active_target(t: &TargetStatus) -> Value {
    let last = t.last();
    let info = &t.info;
    let seconds = |d: Duration| crate::config::Duration(d).to_string();
    json!({
        "discoveredLabels": label_map(&info.discovered),
        "labels": label_map(&info.labels),
        "scrapePool": info.job,
        "scrapeUrl": info.url,
        "globalUrl": info.url,
        "lastError": last.error,
        "lastScrape": last.at.map_or_else(|| GO_ZERO_TIME.to_owned(), rfc3339),
        "lastScrapeDuration": last.duration.as_secs_f64(),
        "health": last.health.as_str(),
        "scrapeInterval": seconds(info.interval),
        "scrapeTimeout": seconds(info.timeout),
    })
}

/// How Go writes a time never set (a target not scraped yet).
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `t` as Go's `time.Time` writes it in JSON (RFC 3339 with nanoseconds,
/// trailing zeros dropped), in UTC.
pub fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    let nanos = since.subsec_nanos();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// The date of `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `/api/v1/status/config`: the running config as YAML, secrets redacted.
pub fn config(status: &Status) -> Answer {
    success(json!({"yaml": status.config().yaml}))
}

/// `/api/v1/status/buildinfo`, Prometheus's fields (`goVersion` says
/// which Rust relay was built for).
pub fn buildinfo() -> Answer {
    success(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": env!("RELAY_COMMIT"),
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": concat!("rust ", env!("CARGO_PKG_RUST_VERSION"), "+"),
    }))
}

/// Every target's series, asked of their loops at once; a target whose
/// loop did not answer is counted in the second value.
pub async fn postings(status: &Status) -> (Vec<(Arc<TargetStatus>, Postings)>, usize) {
    // Asked together, so the wait is the slowest loop's, not their sum.
    let asked: Vec<_> = status
        .targets()
        .into_iter()
        .map(|t| {
            let task = tokio::spawn({
                let t = t.clone();
                async move { t.postings(POSTINGS_WAIT).await }
            });
            (t, task)
        })
        .collect();
    let mut out = Vec::new();
    let mut missing = 0;
    for (t, task) in asked {
        match task.await.ok().flatten() {
            Some(p) => out.push((t, p)),
            None => missing += 1,
        }
    }
    (out, missing)
}

/// The `limit` parameter as Prometheus reads it (default 10).
pub fn limit(query: Option<&str>) -> Result<usize, Answer> {
    match query_param(query, "limit") {
        None => Ok(10),
        Some(s) if s.is_empty() => Ok(10),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n >= 1 => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if n > MAX_TSDB_LIMIT {
                    Err(bad_data(&format!("limit must not exceed {MAX_TSDB_LIMIT}")))
                } else {
                    Ok(n)
                }
            }
            _ => Err(bad_data("limit must be a positive number")),
        },
    }
}

/// `/api/v1/status/tsdb` over every target's series.
pub async fn tsdb(status: &Status, query: Option<&str>) -> Answer {
    let limit = match limit(query) {
        Ok(n) => n,
        Err(answer) => return answer,
    };
    let (per_target, _) = postings(status).await;
    let mut all = Postings::default();
    let (mut min_time, mut max_time) = (i64::MAX, i64::MIN);
    for (t, p) in &per_target {
        all.merge(p);
        if let Some(at) = t.last().at {
            let ms = i64::try_from(
                at.duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis(),
            )
            .unwrap_or(i64::MAX);
            min_time = min_time.min(ms);
            max_time = max_time.max(ms);
        }
    }
    let top = all.top(limit);
    success(tsdb_data(&all, &top, min_time, max_time))
}

fn tsdb_data(all: &Postings, top: &TopLists, min_time: i64, max_time: i64) -> Value {
    let list = |stats: &[Stat]| json!(stats);
    json!({
        "headStats": {
            "numSeries": all.series,
            "numLabelPairs": top.num_label_pairs,
            "chunkCount": 0,
            "minTime": min_time,
            "maxTime": max_time,
        },
        "seriesCountByMetricName": list(&top.series_count_by_metric_name),
        "labelValueCountByLabelName": list(&top.label_value_count_by_label_name),
        "memoryInBytesByLabelName": list(&top.memory_in_bytes_by_label_name),
        "seriesCountByLabelValuePair": list(&top.series_count_by_label_value_pair),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_go_writes_them() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 120_000_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.12Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn limit_is_read_as_prometheus_reads_it() {
        assert_eq!(limit(None).ok(), Some(10));
        assert_eq!(limit(Some("limit=3")).ok(), Some(3));
        for bad in ["limit=0", "limit=-1", "limit=x", "limit=10001"] {
            let answer = limit(Some(bad)).err().map(|a| (a.status, a.body));
            let (status, body) = answer.unwrap_or_default();
            assert_eq!(status, 400, "{bad}");
            assert!(body.contains("\"errorType\":\"bad_data\""), "{bad}: {body}");
        }
    }

    #[test]
    fn targets_list_dropped_ones_by_state() {
        let status = Status::default();
        status.set_config(
            String::new(),
            vec!["app".into(), "db".into()],
            vec![crate::status::DroppedTarget {
                job: "db".into(),
                discovered: vec![("__address__".into(), "b:1".into())],
            }],
        );
        let body =
            |q| serde_json::from_str::<Value>(&targets(&status, Some(q)).body).unwrap_or_default();
        let any = body("state=Any");
        assert_eq!(
            any["data"]["droppedTargetCounts"],
            json!({"app": 0, "db": 1})
        );
        assert_eq!(
            any["data"]["droppedTargets"][0]["discoveredLabels"]["__address__"],
            "b:1"
        );
        let active = body("state=active");
        assert_eq!(active["data"]["droppedTargets"], json!([]));
        assert_eq!(active["data"]["droppedTargetCounts"], Value::Null);
    }
}
