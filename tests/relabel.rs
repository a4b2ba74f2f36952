//! The relabel case table (`tests/relabel_cases.yaml`) and `relay relabel`
//! end to end.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use figment::providers::{Format, Yaml};
use figment::Figment;
use serde::Deserialize;

use relay::exposition::Labels;
use relay::relabel::{RelabelConfig, Rules};

#[derive(Deserialize)]
struct Table {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    #[serde(default)]
    input: BTreeMap<String, String>,
    rules: Vec<RelabelConfig>,
    #[serde(default)]
    output: Option<BTreeMap<String, String>>,
    #[serde(default)]
    dropped: bool,
    #[serde(default)]
    error: Option<ExpectedError>,
}

#[derive(Deserialize)]
struct ExpectedError {
    index: usize,
    field: String,
    message: String,
}

#[test]
fn case_table() {
    let table: Table = Figment::from(Yaml::file_exact("tests/relabel_cases.yaml"))
        .extract()
        .unwrap_or_else(|e| panic!("tests/relabel_cases.yaml: {e}"));
    assert!(table.cases.len() >= 40, "the table lost cases");
    for case in &table.cases {
        let compiled = Rules::compile(&case.rules);
        if let Some(want) = &case.error {
            let err = compiled
                .err()
                .unwrap_or_else(|| panic!("{}: compiled, want an error", case.name));
            assert_eq!(
                (err.index, err.field),
                (want.index, want.field.as_str()),
                "{}",
                case.name
            );
            assert!(
                err.message.starts_with(&want.message),
                "{}: got {:?}",
                case.name,
                err.message
            );
            continue;
        }
        let rules = compiled.unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let mut labels: Labels = case
            .input
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let kept = rules.apply(&mut labels);
        if case.dropped {
            assert!(!kept, "{}: kept {labels:?}", case.name);
            continue;
        }
        assert!(kept, "{}: dropped", case.name);
        let got: BTreeMap<String, String> = labels
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect();
        assert_eq!(Some(&got), case.output.as_ref(), "{}", case.name);
    }
}

#[test]
fn an_unchanged_series_keeps_borrowing() {
    let rules: Vec<RelabelConfig> = Figment::from(Yaml::string(
        "rules:\n- {source_labels: [__name__], regex: 'go_.*', action: drop}\n- {regex: pod, action: labeldrop}\n- {source_labels: [code], regex: '(5)..', target_label: class, replacement: '${1}xx'}\n",
    ))
    .extract_inner("rules")
    .expect("rules");
    let rules = Rules::compile(&rules).expect("valid");
    let mut labels: Labels = [("__name__", "http_requests_total"), ("code", "200")]
        .into_iter()
        .collect();
    assert!(rules.apply(&mut labels));
    assert!(labels.iter().all(|l| matches!(
        (&l.name, &l.value),
        (std::borrow::Cow::Borrowed(_), std::borrow::Cow::Borrowed(_))
    )));
}

fn relabel(config: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("relay.yml");
    std::fs::write(&path, config).expect("write config");
    let path = path.display().to_string();
    let ran = common::pipe(
        common::relay(&[&["relabel", "--config", &path], args].concat()),
        stdin.as_bytes(),
    );
    (ran.code, ran.stdout, ran.stderr)
}

const RULES: &str = "scrape_configs:\n  - job_name: other\n  - job_name: app\n    static_configs: [{targets: ['localhost:8001']}]\n    metric_relabel_configs:\n      - {source_labels: [__name__], regex: 'go_.*', action: drop}\n      - {regex: pod, action: labeldrop}\n";

#[test]
fn cli_round_trips_escapes_and_special_values() {
    let input = "# HELP t A gauge with \\\\ and \\n in its help.\n# TYPE t gauge\nt{path=\"a\\\\b\\\"c\\nd\",pod=\"p\"} NaN\nt{path=\"x\"} +Inf 1700000000000\nt{path=\"y\"} -Inf\n# TYPE go_goroutines gauge\ngo_goroutines 3\n";
    let (code, stdout, stderr) = relabel(RULES, &["--job", "app"], input);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "# HELP t A gauge with \\\\ and \\n in its help.\n# TYPE t gauge\nt{instance=\"localhost:8001\",job=\"app\",path=\"a\\\\b\\\"c\\nd\"} NaN\nt{instance=\"localhost:8001\",job=\"app\",path=\"x\"} +Inf 1700000000000\nt{instance=\"localhost:8001\",job=\"app\",path=\"y\"} -Inf\n"
    );
}

#[test]
fn cli_explain_shows_each_rule() {
    let (code, stdout, _) = relabel(
        RULES,
        &["--job", "app", "--explain"],
        "go_goroutines 1\nup{pod=\"p\"} 1\n",
    );
    assert_eq!(code, 0);
    assert_eq!(
        stdout,
        "series go_goroutines\n  with the target's labels\n      -> go_goroutines{instance=\"localhost:8001\",job=\"app\"}\n  [0] drop source_labels=[__name__] regex=\"go_.*\"\n      -> dropped\nseries up{pod=\"p\"}\n  with the target's labels\n      -> up{pod=\"p\",instance=\"localhost:8001\",job=\"app\"}\n  [0] drop source_labels=[__name__] regex=\"go_.*\"\n      -> up{pod=\"p\",instance=\"localhost:8001\",job=\"app\"}\n  [1] labeldrop regex=\"pod\"\n      -> up{instance=\"localhost:8001\",job=\"app\"}\n  => kept as up{instance=\"localhost:8001\",job=\"app\"}\n"
    );
}

/// Rules on `job`, `instance` and a static label act in the debugger as in
/// `relay run` (they showed no effect when the debugger left target labels out).
const TARGET_RULES: &str = "scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['localhost:8001', 'localhost:8002']\n        labels: {team: shop}\n    relabel_configs:\n      - {source_labels: [__address__], regex: '.*:8002', target_label: zone, replacement: b}\n    metric_relabel_configs:\n      - {source_labels: [job, instance], regex: 'app;localhost:800(.)', target_label: port_digit}\n      - {source_labels: [team], regex: shop, action: drop}\n      - {regex: zone, action: labeldrop}\n";

#[test]
fn cli_applies_rules_to_target_labels_as_the_scrape_does() {
    let (code, stdout, stderr) = relabel(TARGET_RULES, &["--explain"], "up 1\n");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(
            "-> up{instance=\"localhost:8001\",job=\"app\",team=\"shop\",port_digit=\"1\"}\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("  [1] drop source_labels=[team] regex=\"shop\"\n      -> dropped\n"),
        "{stdout}"
    );
    // Without the static label's drop, the second target's series comes out
    // with its target labels, sorted, as relay serves it.
    let kept = TARGET_RULES.replace(
        "      - {source_labels: [team], regex: shop, action: drop}\n",
        "",
    );
    let (code, stdout, stderr) = relabel(&kept, &["--target", "localhost:8002"], "up 1\n");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "# TYPE up untyped\nup{instance=\"localhost:8002\",job=\"app\",port_digit=\"2\",team=\"shop\"} 1\n"
    );
    let (code, _, stderr) = relabel(&kept, &["--target", "localhost:9"], "up 1\n");
    assert_eq!(code, 1);
    assert!(
        stderr.contains(
            "job \"app\" has no target \"localhost:9\" (targets: localhost:8001, localhost:8002)"
        ),
        "{stderr}"
    );
    let (code, _, stderr) = relabel(RULES, &["--job", "other"], "up 1\n");
    assert_eq!(code, 1);
    assert!(stderr.contains("job \"other\" has no target"), "{stderr}");
}

#[test]
fn cli_unknown_job_and_bad_input_fail_clearly() {
    let (code, _, stderr) = relabel(RULES, &["--job", "nope"], "up 1\n");
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no scrape config has job_name \"nope\" (jobs: other, app)"),
        "{stderr}"
    );
    let (code, _, stderr) = relabel(RULES, &["--job", "app"], "up 1\nup{ 2\n");
    assert_eq!(code, 1);
    assert!(
        stderr.contains("stdin:2:5: expected label name, got \"2\""),
        "{stderr}"
    );
}

#[test]
fn check_config_names_the_invalid_rule() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yml");
    std::fs::write(
        &path,
        "scrape_configs:\n  - job_name: app\n    metric_relabel_configs:\n      - {regex: a, action: keep}\n      - {source_labels: [a], target_label: s, action: hashmod}\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["check", "config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("scrape_configs[0].metric_relabel_configs[1].modulus: relabel configuration for hashmod requires non-zero modulus"),
        "{stderr}"
    );
}

#[test]
fn cli_treats_a_closed_stdout_as_success() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["relabel", "--config", "config/relay.yml"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn relay");
    // The reader goes away before relay writes, as with `relay relabel | head`.
    drop(child.stdout.take());
    let input = "a{b=\"c\"} 1\n".repeat(100_000);
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes());
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// docs/relabel.md's example runs as shown: its config ships, and the
/// binary prints the output the page shows (the README's example named a
/// config that did not exist).
#[test]
fn the_documented_example_prints_what_the_docs_show() {
    let page = std::fs::read_to_string("docs/relabel.md").expect("docs/relabel.md");
    let start = page
        .find("```console\n$ printf ")
        .expect("a console block running relay relabel");
    let block = &page[start + "```console\n".len()..];
    let block = &block[..block.find("```").expect("the block's end")];
    let (command, shown) = block.split_once('\n').expect("a command line");
    let input = command
        .strip_prefix("$ printf '")
        .and_then(|c| {
            c.split_once("' | relay relabel --config config/relabel-example.yml --explain")
        })
        .map(|(input, _)| input.replace("\\n", "\n"))
        .expect("the example's input and command");
    let ran = common::pipe(
        common::relay(&[
            "relabel",
            "--config",
            "config/relabel-example.yml",
            "--explain",
        ]),
        input.as_bytes(),
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(ran.stdout, shown);
    assert!(
        shown.contains("tier=\"backend\""),
        "the example shows a rule on job"
    );
}
