//! A target too large to hold twice (issue 20): its next scrape renders
//! over its result's buffers, and a GET meanwhile still gets the whole of
//! the last result, as the compressed body already made of it.

mod common;

use std::io::Read;
use std::time::Duration;

use common::rw::Receiver;
use common::{get, wait_for, Relay, Reply, Target};

/// About 5.6 MB of rendered lines: over the 4 MiB from which a result is
/// rendered over.
const SERIES: usize = 90_000;

const ASK: [(&str, &str); 2] = [
    (
        "Accept",
        "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4",
    ),
    ("Accept-Encoding", "gzip"),
];

/// The app's exposition: `big_series{i="N"} N` for every N below SERIES.
fn app_body() -> String {
    (0..SERIES)
        .map(|i| format!("big_series{{i=\"{i}\"}} {i}\n"))
        .collect()
}

/// The `big_series` values a gzipped OpenMetrics answer holds, in order.
fn values(body: &[u8]) -> Vec<u64> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(body)
        .read_to_string(&mut text)
        .expect("a gzip body");
    text.lines()
        .filter(|l| l.starts_with("big_series{"))
        .map(|l| {
            l.rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("a value in {l:?}"))
        })
        .collect()
}

#[test]
fn a_get_while_a_large_target_is_scraped_gets_all_of_its_last_result() {
    let body = app_body();
    // The app answers after a second: its scrape renders for that long.
    let app = Target::start(Reply {
        delay: Duration::from_secs(1),
        ..Reply::text(&body)
    });
    let receiver = Receiver::start();
    let relay = Relay::start_env(
        &format!(
            "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\nscrape_configs:\n  - job_name: big\n    static_configs:\n      - targets: ['{}']\nremote_write:\n  - url: {}\n",
            app.addr, receiver.url
        ),
        &[("RELAY_LOG", "debug")],
    );
    let answer = || {
        get(&relay.addr, "/metrics", &ASK)
            .filter(|r| r.status == 200)
            .map(|r| values(&r.body))
    };
    wait_for("relay to serve the app's series", || {
        answer().filter(|v| v.len() == SERIES)
    });
    // GETs for three scrapes (bounded in count), every one whole.
    let want: Vec<u64> = (0..SERIES as u64).collect();
    for i in 0..60 {
        let got = answer().unwrap_or_else(|| panic!("GET {i} failed"));
        assert!(
            got == want,
            "GET {i}: {} series, not the app's {SERIES}",
            got.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        relay
            .logs()
            .contains("GET answered with the body held while a large result renders"),
        "no GET fell in a scrape: the held body was not served\n{}",
        relay.logs()
    );
}

/// Without remote write every GET has the target scraped for it: two
/// scrapers asking at once, each answer holds the whole target, whether it
/// came from the scrape it waited for or from the one beside it.
#[test]
fn concurrent_gets_of_a_large_serve_only_target_get_all_of_it() {
    let body = app_body();
    let app = Target::start(Reply::text(&body));
    let relay = Relay::start(&format!(
        "scrape_configs:\n  - job_name: big\n    static_configs:\n      - targets: ['{}']\n",
        app.addr
    ));
    let want: Vec<u64> = (0..SERIES as u64).collect();
    std::thread::scope(|s| {
        for scraper in 0..2 {
            let (relay, want) = (&relay, &want);
            s.spawn(move || {
                for i in 0..8 {
                    let got = get(&relay.addr, "/metrics", &ASK)
                        .filter(|r| r.status == 200)
                        .map(|r| values(&r.body))
                        .unwrap_or_else(|| panic!("scraper {scraper}, GET {i} failed"));
                    assert!(
                        got == *want,
                        "scraper {scraper}, GET {i}: {} series, not the app's {SERIES}",
                        got.len()
                    );
                }
            });
        }
    });
}
