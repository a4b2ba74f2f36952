//! `relay demo`: a synthetic app with realistic, moving metrics (requests by
//! route, method and code; a latency histogram; in-flight requests; process
//! metrics) and relay scraping it, so a newcomer sees relay work with one
//! command and no cluster. The generator also feeds the benchmarks.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Response;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::run::{self, RunError};

/// What `relay demo` was asked to do.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub listen_address: String,
    pub agent_address: String,
    pub series: usize,
    pub agent_only: bool,
    /// The share of series replaced by new ones at every scrape (0 to 1),
    /// for benchmarks of series churn (pods of a Deployment rolling, say).
    pub churn: f64,
}

const METHODS: [&str; 2] = ["GET", "POST"];
const CODES: [&str; 3] = ["200", "404", "500"];
const BUCKETS: [&str; 10] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
];
/// Series per route: requests by method and code, plus the histogram.
const SERIES_PER_ROUTE: usize = METHODS.len() * CODES.len() + BUCKETS.len() + 3;

/// The app's exposition after `elapsed` seconds, about `series` series,
/// in text format 0.0.4. Values grow with time like a busy service's.
pub fn exposition(series: usize, elapsed: f64) -> String {
    exposition_with_churn(series, elapsed, Churn::NONE, 0)
}

/// Series churn: which routes the app has at its `scrape`-th scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Churn {
    /// Per mille of the routes (and so of the series) replaced per scrape.
    per_mille: u64,
}

impl Churn {
    /// The same routes forever.
    pub const NONE: Churn = Churn { per_mille: 0 };

    /// `fraction` (0 to 1) of the routes replaced by new ones at each scrape.
    pub fn new(fraction: f64) -> Churn {
        Churn {
            per_mille: (fraction.clamp(0.0, 1.0) * 1000.0).round() as u64,
        }
    }

    /// The number in route `r`'s path at `scrape`: `r` itself without churn;
    /// with it, a new number whenever the route's turn comes, so a route
    /// lives 1/fraction scrapes and the same share of routes turns over
    /// each scrape (spread by `r`, so it is not all at once).
    fn route_id(self, r: usize, routes: usize, scrape: u64) -> u64 {
        if self.per_mille == 0 {
            return r as u64;
        }
        let phase = (r as u64 * self.per_mille) % 1000;
        let generation = (scrape * self.per_mille + phase) / 1000;
        r as u64 + generation * routes as u64
    }
}

/// [`exposition`] at the app's `scrape`-th scrape, with `churn`.
pub fn exposition_with_churn(series: usize, elapsed: f64, churn: Churn, scrape: u64) -> String {
    let routes = (series / SERIES_PER_ROUTE).max(1);
    let mut out = String::with_capacity(routes * SERIES_PER_ROUTE * 90 + 1024);
    out.push_str("# HELP http_requests_total Requests handled, by route, method and status code.\n# TYPE http_requests_total counter\n");
    for r in 0..routes {
        let id = churn.route_id(r, routes, scrape);
        for (m, method) in METHODS.iter().enumerate() {
            for (c, code) in CODES.iter().enumerate() {
                let rate = (1 + r % 7) as f64 * [10.0, 2.0][m] * [1.0, 0.05, 0.01][c];
                let _ = writeln!(
                    out,
                    "http_requests_total{{route=\"/api/v1/items/{id}\",method=\"{method}\",code=\"{code}\"}} {}",
                    (rate * elapsed).floor()
                );
            }
        }
    }
    out.push_str("# HELP http_request_duration_seconds Request latency, by route.\n# TYPE http_request_duration_seconds histogram\n");
    for r in 0..routes {
        let id = churn.route_id(r, routes, scrape);
        let count = ((1 + r % 7) as f64 * 12.0 * elapsed).floor();
        let mut cumulative = 0.0;
        for (b, le) in BUCKETS.iter().enumerate() {
            cumulative += count * [0.05, 0.1, 0.2, 0.25, 0.2, 0.1, 0.05, 0.03, 0.01, 0.005][b];
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{route=\"/api/v1/items/{id}\",le=\"{le}\"}} {}",
                cumulative.floor()
            );
        }
        let _ = writeln!(out, "http_request_duration_seconds_bucket{{route=\"/api/v1/items/{id}\",le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "http_request_duration_seconds_sum{{route=\"/api/v1/items/{id}\"}} {}",
            count * 0.087
        );
        let _ = writeln!(
            out,
            "http_request_duration_seconds_count{{route=\"/api/v1/items/{id}\"}} {count}"
        );
    }
    let in_flight = 3.0 + 2.0 * (elapsed / 5.0).sin();
    let _ = write!(
        out,
        "# HELP http_requests_in_flight Requests being handled now.\n# TYPE http_requests_in_flight gauge\nhttp_requests_in_flight {}\n\
         # HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}\n\
         # HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}\n\
         # HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 1.7e+09\n",
        in_flight.round(),
        (elapsed * 0.02 * 1000.0).round() / 1000.0,
        48_000_000 + routes * 4096,
    );
    out
}

/// Binds `address`, or a free port on the same host when it is taken.
async fn bind_or_free(address: &str) -> Result<TcpListener, RunError> {
    match TcpListener::bind(address).await {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let host = address.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h);
            run::bind(&format!("{host}:0")).await
        }
        Err(source) => Err(RunError::Listen {
            address: address.to_owned(),
            source,
        }),
    }
}

/// Serves the synthetic app until the process stops; each request is a
/// scrape (what churn counts).
async fn serve_agent(listener: TcpListener, series: usize, churn: Churn) {
    let started = Instant::now();
    let scrapes = Arc::new(AtomicU64::new(0));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let scrapes = scrapes.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |_req| {
                let scrape = scrapes.fetch_add(1, Ordering::Relaxed);
                let elapsed = started.elapsed().as_secs_f64() + 60.0;
                let body = exposition_with_churn(series, elapsed, churn, scrape);
                async move {
                    let mut response = Response::new(Full::new(Bytes::from(body)));
                    response.headers_mut().insert(
                        CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                    );
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Runs the synthetic agent (and, unless `agent_only`, relay against it).
pub async fn run(options: DemoOptions) -> Result<(), RunError> {
    let agent = bind_or_free(&options.agent_address).await?;
    let agent_addr = agent.local_addr().map_err(|source| RunError::Listen {
        address: options.agent_address.clone(),
        source,
    })?;
    tokio::spawn(serve_agent(
        agent,
        options.series,
        Churn::new(options.churn),
    ));
    println!(
        "synthetic app: http://{agent_addr}/metrics ({} series)",
        options.series
    );
    if options.agent_only {
        return run::shutdown_signal().await;
    }
    let yaml = format!(
        "global:\n  scrape_interval: 5s\n  scrape_timeout: 5s\nscrape_configs:\n  - job_name: demo-app\n    static_configs:\n      - targets: [\"{agent_addr}\"]\nrelay:\n  listen_address: \"{}\"\n",
        options.listen_address
    );
    let config = match crate::plan::from_yaml_str(&yaml) {
        Ok(plan) => plan,
        Err(e) => {
            return Err(RunError::Listen {
                address: options.listen_address,
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()),
            })
        }
    };
    let listener = run::bind(&options.listen_address).await?;
    let relay_addr = listener
        .local_addr()
        .map_or(options.listen_address.clone(), |a| a.to_string());
    println!(
        "relay:         http://{relay_addr}/metrics (scrapes the app at each GET of /metrics)\n\n\
         Try:\n  curl -s http://{relay_addr}/metrics | grep -E '^(up|http_requests_total)'\n  curl -s http://{relay_addr}/-/ready\n\n\
         Or point a Prometheus at it (prometheus.yml):\n  scrape_configs:\n    - job_name: relay\n      honor_labels: true\n      static_configs:\n        - targets: [\"{relay_addr}\"]\n\nCtrl-C stops."
    );
    run::run_on(
        config,
        listener,
        run::shutdown_signal(),
        None,
        Arc::new(crate::web::Web::disabled()),
        crate::serve::Options::default(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::{check, Format};

    #[test]
    fn exposition_is_valid_and_scales() {
        let text = exposition(1000, 100.0);
        assert_eq!(check(text.as_bytes(), Format::Text), vec![]);
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        assert!((950..=1100).contains(&samples), "{samples}");
        assert!(text.contains(
            "http_requests_total{route=\"/api/v1/items/0\",method=\"GET\",code=\"200\"} 1000\n"
        ));
    }

    fn series_of(text: &str) -> std::collections::HashSet<&str> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' ').map(|(s, _)| s))
            .collect()
    }

    #[test]
    fn churn_replaces_its_share_of_series_every_scrape() {
        assert_eq!(
            exposition_with_churn(1000, 100.0, Churn::new(0.0), 7),
            exposition(1000, 100.0)
        );
        let churn = Churn::new(0.1);
        let mut previous = exposition_with_churn(10_000, 100.0, churn, 0);
        let count = series_of(&previous).len();
        for scrape in 1..25 {
            let next = exposition_with_churn(10_000, 100.0, churn, scrape);
            let (old, new) = (series_of(&previous), series_of(&next));
            assert_eq!(new.len(), count, "scrape {scrape}");
            let replaced = old.difference(&new).count();
            // 10% of the routes, and every series of each (not the 4 process series).
            assert!(
                (950..=1060).contains(&replaced),
                "scrape {scrape}: {replaced}"
            );
            assert_eq!(check(next.as_bytes(), Format::Text), vec![]);
            previous = next;
        }
    }
}
