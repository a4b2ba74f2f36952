//! The status page (`GET /`): one HTML document rendered on the server,
//! with its style inline and no script, image or font from anywhere, so it
//! works offline through `kubectl port-forward`. It shows the targets (with
//! each one's top series counts), the remote-write queues, the WAL against
//! its cap, the config's last reload and relay's version. Every value from
//! outside (labels, URLs, errors, config) goes through [`escape`].

use std::fmt::Write as _;
use std::time::SystemTime;

use super::api::{postings, rfc3339};
use crate::status::cardinality::Stat;
use crate::status::{Health, Status};

/// The page's `Content-Security-Policy`: its inline style, nothing else
/// (no script, no request anywhere, not even to relay).
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";

/// How many entries each per-target top list shows.
const TOP: usize = 5;

/// Up to how many targets their top lists are unfolded.
const OPEN_UP_TO: usize = 4;

/// `text` safe in HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.15em;margin:1.4em 0 .4em}\
table{border-collapse:collapse;width:100%}th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}\
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.up{color:#fff;background:#2a7d2a}.down{color:#fff;background:#b3261e}.unknown{background:#ddd}\
.health{font-weight:bold;padding:.1em .5em;border-radius:3px}.err{color:#b3261e;word-break:break-word;min-width:9em}\
.meta{color:#555}code{font-size:.95em}details{margin:.2em 0}summary{cursor:pointer}\
.lists{display:flex;gap:1.5em;flex-wrap:wrap;align-items:flex-start}.lists table{width:auto}";

/// How long ago `t` was, for people ("3.2s ago").
fn ago(t: SystemTime, now: SystemTime) -> String {
    match now.duration_since(t) {
        Ok(d) => format!("{:.1}s ago", d.as_secs_f64()),
        Err(_) => "just now".to_owned(),
    }
}

/// Bytes for people (1024-based, as the cap is written).
fn bytes(n: u64) -> String {
    let mut value = n as f64;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if value < 1024.0 {
            return format!("{value:.1} {unit}");
        }
        value /= 1024.0;
    }
    format!("{value:.1} TiB")
}

fn top_table(out: &mut String, title: &str, stats: &[Stat]) {
    let _ = write!(
        out,
        "<table><tr><th>{}</th><th>count</th></tr>",
        escape(title)
    );
    for s in stats {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td class=n>{}</td></tr>",
            escape(&s.name),
            s.value
        );
    }
    out.push_str("</table>");
}

/// The whole page.
pub async fn render(status: &Status) -> String {
    let now = SystemTime::now();
    let config = status.config();
    let (per_target, missing) = postings(status).await;
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width\"><title>relay status</title>\
         <style>{STYLE}</style></head><body><h1>relay {}</h1>",
        escape(env!("CARGO_PKG_VERSION"))
    );
    let reload = match (config.last_reload_ok, config.last_reload_success) {
        (true, Some(at)) => format!("config loaded at {} ({})", rfc3339(at), ago(at, now)),
        (false, success) => format!(
            "<span class=err>the last config reload failed{}</span>; the config loaded at {} runs",
            config
                .last_reload
                .map(|t| format!(" at {}", rfc3339(t)))
                .unwrap_or_default(),
            success.map_or_else(|| "start".to_owned(), rfc3339)
        ),
        (true, None) => "config loaded".to_owned(),
    };
    let _ = write!(
        out,
        "<p class=meta>version {} (commit {}) · {reload}</p>",
        escape(env!("CARGO_PKG_VERSION")),
        escape(env!("RELAY_COMMIT"))
    );

    // Targets.
    let targets = status.targets();
    let _ = write!(out, "<h2>Targets ({})</h2>", targets.len());
    out.push_str(
        "<table id=targets><tr><th>job</th><th>endpoint</th><th>labels</th><th>health</th>\
         <th>last scrape</th><th>duration</th><th>samples</th><th>after relabeling</th>\
         <th>series</th><th>last error</th></tr>",
    );
    for t in &targets {
        let last = t.last();
        let labels = t
            .info
            .labels
            .iter()
            .map(|(k, v)| format!("{}=\"{}\"", escape(k), escape(v)))
            .collect::<Vec<_>>()
            .join(" ");
        let health = last.health.as_str();
        let when = last.at.map_or_else(
            || "never".to_owned(),
            |at| format!("<span title=\"{}\">{}</span>", rfc3339(at), ago(at, now)),
        );
        let _ = write!(
            out,
            "<tr class=target><td>{}</td><td><code>{}</code></td><td><code>{labels}</code></td>\
             <td><span class=\"health {health}\">{health}</span></td><td>{when}</td>\
             <td class=n>{:.3}s</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td>\
             <td class=err>{}</td></tr>",
            escape(&t.info.job),
            escape(&t.info.url),
            last.duration.as_secs_f64(),
            last.samples_scraped,
            last.samples_kept,
            last.series,
            escape(&last.error),
        );
    }
    out.push_str("</table>");
    if targets.iter().any(|t| t.last().health == Health::Unknown) {
        out.push_str("<p class=meta>A target not scraped yet shows <i>unknown</i>; without remote write, targets are scraped when /metrics is read.</p>");
    }

    // Cardinality per target (unfolded while the page stays short).
    out.push_str("<h2>Series by target</h2>");
    let open = if per_target.len() <= OPEN_UP_TO {
        " open"
    } else {
        ""
    };
    for (t, p) in &per_target {
        if p.series == 0 {
            let _ = write!(
                out,
                "<p><code>{}</code> {} · no series (not scraped yet, or its last scrape failed)</p>",
                escape(&t.info.job),
                escape(&t.info.url)
            );
            continue;
        }
        let top = p.top(TOP);
        let _ = write!(
            out,
            "<details{open}><summary><code>{}</code> {} · {} series</summary><div class=lists>",
            escape(&t.info.job),
            escape(&t.info.url),
            p.series
        );
        top_table(&mut out, "metric name", &top.series_count_by_metric_name);
        top_table(
            &mut out,
            "label: values",
            &top.label_value_count_by_label_name,
        );
        top_table(
            &mut out,
            "label=value: series",
            &top.series_count_by_label_value_pair,
        );
        top_table(
            &mut out,
            "label: bytes of values",
            &top.memory_in_bytes_by_label_name,
        );
        out.push_str("</div></details>");
    }
    if missing > 0 {
        let _ = write!(
            out,
            "<p class=meta>{missing} target(s) left out: no answer within {}s (a scrape in flight holds its series).</p>",
            super::api::POSTINGS_WAIT.as_secs()
        );
    }
    out.push_str("<p class=meta>Over all targets: <a href=\"api/v1/status/tsdb\">api/v1/status/tsdb</a>.</p>");

    // Remote write.
    let queues = status.queues();
    let _ = write!(out, "<h2>Remote write ({})</h2>", queues.len());
    if queues.is_empty() {
        out.push_str("<p class=meta>No remote_write configured: /metrics is served only.</p>");
    } else {
        out.push_str(
            "<table id=queues><tr><th>name</th><th>URL</th><th>protocol</th><th>shards</th>\
             <th>pending samples</th><th>oldest unsent</th><th>last error</th></tr>",
        );
        for q in &queues {
            let error = q
                .last_error()
                .map(|(at, e)| format!("{} ({})", escape(&e), ago(at, now)))
                .unwrap_or_default();
            let _ = write!(
                out,
                "<tr class=queue><td>{}</td><td><code>{}</code></td><td>{}</td><td class=n>{}</td>\
                 <td class=n>{}</td><td class=n>{:.1}s</td><td class=err>{error}</td></tr>",
                escape(&q.remote_name),
                escape(&q.url),
                q.protocol,
                q.shards(),
                q.pending(),
                q.oldest_unsent_age(),
            );
        }
        out.push_str("</table>");
    }
    if let Some(wal) = status.wal() {
        let size = wal.size_bytes();
        let share = if wal.cap_bytes > 0 {
            size as f64 * 100.0 / wal.cap_bytes as f64
        } else {
            0.0
        };
        let _ = write!(
            out,
            "<p id=wal>WAL <code>{}</code>: {} of {} ({share:.1}%)</p>",
            escape(&wal.dir),
            bytes(size),
            bytes(wal.cap_bytes),
        );
    }
    out.push_str(
        "<h2>APIs</h2><p class=meta><a href=\"metrics\">metrics</a> · \
         <a href=\"api/v1/targets\">api/v1/targets</a> · \
         <a href=\"api/v1/status/config\">api/v1/status/config</a> · \
         <a href=\"api/v1/status/buildinfo\">api/v1/status/buildinfo</a> · \
         <a href=\"api/v1/status/tsdb\">api/v1/status/tsdb</a></p></body></html>\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_values_is_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }

    #[tokio::test]
    async fn a_target_error_with_markup_is_shown_as_text() {
        let status = Status::default();
        let (target, asks) = status.add_target(
            1,
            crate::status::TargetInfo {
                job: "<b>job</b>".into(),
                url: "http://a:1/metrics?x=<i>".into(),
                labels: vec![("team".into(), "\"><script>x()</script>".into())],
                ..Default::default()
            },
        );
        target.scraped(crate::status::LastScrape {
            health: Health::Down,
            at: Some(SystemTime::now()),
            error: "<img src=x onerror=alert(1)>".into(),
            ..Default::default()
        });
        // No loop answers for the series: the page goes without them.
        drop(asks);
        let page = render(&status).await;
        for raw in ["<b>job", "<i>", "<script>", "<img"] {
            assert!(!page.contains(raw), "{raw} in {page}");
        }
        assert!(
            page.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{page}"
        );
        assert!(page.contains("class=\"health down\""), "{page}");
    }
}
