//! The exposition parser and renderer: the acceptance table of
//! `relay check metrics` (run as the real binary), valid input of every type
//! in both formats, entry tables, a differential test against
//! prometheus-parse, property tests, and Python's prometheus_client as an
//! independent reader of what we render.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use proptest::prelude::*;
use relay::exposition::{check, render, Entry, Format, Labels, MetricType, Parser};

fn check_cli(format: &str, input: &[u8]) -> (i32, String) {
    let ran = common::pipe(
        common::relay(&["check", "metrics", "--format", format]),
        input,
    );
    (ran.code, ran.stderr)
}

/// (format, input, the first problem as `<stdin>:line:col: message...`).
const INVALID: &[(&str, &[u8], &str)] = &[
    (
        "text",
        b"a{b=\"c} 1\n",
        "<stdin>:1:5: unterminated label value",
    ),
    ("text", b"a 1\nb 12x\n", "<stdin>:2:3: bad number \"12x\""),
    (
        "text",
        b"a{1x=\"1\"} 1\n",
        "<stdin>:1:3: expected label name, got \"1x\"",
    ),
    (
        "text",
        b"a{b=\"\xc3\x28\"} 1\n",
        "<stdin>:1:6: invalid UTF-8 in label value",
    ),
    (
        "text",
        b"a{b=\"1\",c=\"2\",b=\"3\"} 1\n",
        "<stdin>:1:15: label name \"b\" is not unique",
    ),
    (
        "text",
        b"a 1 1000 extra\n",
        "<stdin>:1:10: expected end of line after timestamp, got \"extra\"",
    ),
    (
        "text",
        b"a 1 12:00\n",
        "<stdin>:1:5: bad timestamp \"12:00\" (expected integer milliseconds)",
    ),
    (
        "openmetrics",
        b"# TYPE a gauge\na 1\n",
        "<stdin>:3:1: expected \"# EOF\" at the end of an OpenMetrics exposition",
    ),
    (
        "openmetrics",
        b"# EOF\n# TYPE a gauge\na 1\n",
        "<stdin>:2:1: unexpected data after \"# EOF\"",
    ),
    (
        "text",
        b"# TYPE requests counter\nrequests 1\n",
        "<stdin>:2:1: counter \"requests\" should have a \"_total\" suffix",
    ),
    (
        "openmetrics",
        b"# TYPE requests counter\nrequests 1\n# EOF\n",
        "<stdin>:2:1: counter \"requests\" should have a \"_total\" suffix",
    ),
    (
        "text",
        b"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
        "<stdin>:2:1: histogram \"h\" has no bucket with le=\"+Inf\"",
    ),
    (
        "openmetrics",
        b"# TYPE size_bytes gauge\n# UNIT size_bytes seconds\nsize_bytes 1\n# EOF\n",
        "<stdin>:2:3: unit \"seconds\" is not a suffix of metric \"size_bytes\"",
    ),
    (
        "openmetrics",
        b"a  1\n# EOF\n",
        "<stdin>:1:3: expected value, got \" 1\"",
    ),
    (
        "text",
        b"# TYPE a gaugee\n",
        "<stdin>:1:10: invalid metric type \"gaugee\"",
    ),
];

#[test]
fn check_metrics_rejects_each_problem_with_its_position() {
    for (format, input, want) in INVALID {
        let (code, stderr) = check_cli(format, input);
        assert_eq!(code, 1, "{}: {stderr}", String::from_utf8_lossy(input));
        assert!(
            stderr.starts_with(want),
            "input {:?}\n got: {stderr}\nwant: {want}",
            String::from_utf8_lossy(input)
        );
    }
}

const VALID_TEXT: &str = r#"# HELP c_total A counter.
# TYPE c_total counter
c_total{a="x"} 1 1700000000000
# HELP g A gauge with "quotes" and \\ and \n.
# TYPE g gauge
g{path="a\"b\\c\nd"} -1.5e-07
g{path="nan"} NaN
g{path="inf"} +Inf
g{path="minf"} -Inf
# TYPE h histogram
h_bucket{le="0.5"} 1
h_bucket{le="+Inf"} 3
h_sum 1.5
h_count 3
# TYPE s summary
s{quantile="0.5"} 0.1
s{quantile="0.99"} 0.9
s_sum 2
s_count 4
# TYPE u untyped
u 1
no_type_at_all{x="y"} 2
"#;

const VALID_OPENMETRICS: &str = r#"# HELP c A counter.
# TYPE c counter
c_total{a="x"} 1 1700000000.5 # {trace_id="abc"} 0.5 1700000000.1
c_created{a="x"} 1700000000
# TYPE g_seconds gauge
# UNIT g_seconds seconds
g_seconds 1
# TYPE h histogram
h_bucket{le="0.5"} 1
h_bucket{le="+Inf"} 3 # {trace_id="def"} 0.7
h_sum 1.5
h_count 3
# TYPE gh gaugehistogram
gh_bucket{le="1"} 1
gh_bucket{le="+Inf"} 2
gh_gcount 2
gh_gsum 1
# TYPE s summary
s{quantile="0.5"} 0.1
s_sum 2
s_count 4
# TYPE i info
i_info{version="1.0"} 1
# TYPE st stateset
st{st="a"} 1
st{st="b"} 0
# TYPE un unknown
un 1
# EOF
"#;

#[test]
fn every_type_is_valid_in_both_formats() {
    assert_eq!(check_cli("text", VALID_TEXT.as_bytes()), (0, String::new()));
    assert_eq!(
        check_cli("openmetrics", VALID_OPENMETRICS.as_bytes()),
        (0, String::new())
    );
}

#[test]
fn entries_table() {
    let entries: Vec<Entry> = Parser::new(VALID_OPENMETRICS.as_bytes(), Format::OpenMetrics)
        .collect::<Result<_, _>>()
        .expect("valid");
    let kinds: Vec<(&str, MetricType)> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Type { name, kind } => Some((*name, *kind)),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("c", MetricType::Counter),
            ("g_seconds", MetricType::Gauge),
            ("h", MetricType::Histogram),
            ("gh", MetricType::GaugeHistogram),
            ("s", MetricType::Summary),
            ("i", MetricType::Info),
            ("st", MetricType::StateSet),
            ("un", MetricType::Unknown),
        ]
    );
    assert!(entries.contains(&Entry::Unit {
        name: "g_seconds",
        unit: "seconds"
    }));
    assert_eq!(entries.last(), Some(&Entry::Eof));
    let Some(Entry::Sample(c)) = entries.get(2) else {
        panic!("{:?}", entries.get(2))
    };
    assert_eq!(
        (c.name, c.value, c.timestamp_ms),
        ("c_total", 1.0, Some(1_700_000_000_500))
    );
    let ex = c.exemplar.as_ref().expect("exemplar");
    assert_eq!(
        (ex.labels_src, ex.value, ex.timestamp),
        ("trace_id=\"abc\"", 0.5, Some(1_700_000_000.1))
    );

    let text: Vec<Entry> = Parser::new(VALID_TEXT.as_bytes(), Format::Text)
        .collect::<Result<_, _>>()
        .expect("valid");
    assert_eq!(
        text[3],
        Entry::Help {
            name: "g",
            text: "A gauge with \"quotes\" and \\ and \n.".into()
        }
    );
    let Entry::Sample(g) = &text[5] else {
        panic!("{:?}", text[5])
    };
    let mut labels = Labels::default();
    g.labels_into(&mut labels);
    assert_eq!(labels.get("path"), Some("a\"b\\c\nd"));
    assert_eq!(g.value, -1.5e-7);
}

/// Cases of Prometheus's promparse tests, written as ours: what Prometheus
/// ingests must parse to the same name, labels and value here.
#[test]
fn accepts_what_promparse_accepts() {
    let input = "# HELP gc A summary.\n# \tTYPE gc summary\ngc{quantile=\"0.25\",} 7.424100000000001e-05\ngc{ quantile=\"0.9\", a=\"b\"} 8.3835e-05\n# Hrandom comment starting with prefix of HELP\n#\nwind_speed{A=\"2\",c=\"3\"} 12345\n# HELP nohelp1\n# HELP nohelp2 \ngc { quantile = \"1.0\", a = \"b\" } 8.3835e-05\ngc { quantile = \"2.0\" a = \"b\" } 8.3835e-05\nsome:aggregate:rate5m{a_b=\"c\"}\t1\ngo_goroutines 33  \t123123\n_metric_starting_with_underscore 1\ntestmetric{label=\"\\\"bar\\\"\"} 1\n# HELP metric foo\u{0}bar\nnull_byte_metric{a=\"abc\u{0}\"} 1";
    let entries: Vec<Entry> = Parser::new(input.as_bytes(), Format::Text)
        .collect::<Result<_, _>>()
        .expect("promparse accepts all of it");
    let mut got = Vec::new();
    for e in &entries {
        match e {
            Entry::Sample(s) => {
                let pairs: Vec<String> = s.labels().map(|(k, v)| format!("{k}={v}")).collect();
                got.push(format!(
                    "{} {} {} {:?}",
                    s.name,
                    pairs.join(","),
                    s.value,
                    s.timestamp_ms
                ));
            }
            Entry::Help { name, text } => got.push(format!("HELP {name} {text:?}")),
            Entry::Type { name, kind } => got.push(format!("TYPE {name} {kind}")),
            Entry::Comment(c) => got.push(format!("COMMENT {c:?}")),
            other => got.push(format!("{other:?}")),
        }
    }
    assert_eq!(
        got,
        vec![
            "HELP gc \"A summary.\"",
            "TYPE gc summary",
            "gc quantile=0.25 0.00007424100000000001 None",
            "gc quantile=0.9,a=b 0.000083835 None",
            "COMMENT \" Hrandom comment starting with prefix of HELP\"",
            "COMMENT \"\"",
            "wind_speed A=2,c=3 12345 None",
            "HELP nohelp1 \"\"",
            "HELP nohelp2 \"\"",
            "gc quantile=1.0,a=b 0.000083835 None",
            "gc quantile=2.0,a=b 0.000083835 None",
            "some:aggregate:rate5m a_b=c 1 None",
            "go_goroutines  33 Some(123123)",
            "_metric_starting_with_underscore  1 None",
            "testmetric label=\"bar\" 1 None",
            "HELP metric \"foo\\0bar\"",
            "null_byte_metric a=abc\u{0} 1 None",
        ]
    );
}

/// promparse's error cases: each is an error here too, located.
#[test]
fn rejects_what_promparse_rejects() {
    let cases: &[(&[u8], &str)] = &[
        (b"a", "1:2: expected value, got end of line"),
        (b"a{b='c'} 1\n", "1:5: expected label value, got \"'c'\""),
        (b"a{b=\n", "1:5: expected label value, got end of line"),
        (b"a{\xff=\"foo\"} 1\n", "1:3: expected label name"),
        (b"a{b=\"\xff\"} 1\n", "1:6: invalid UTF-8 in label value"),
        (b"a true\n", "1:3: bad number \"true\""),
        (
            b"something_weird{problem=\"",
            "1:25: unterminated label value",
        ),
        (
            b"empty_label_name{=\"\"} 0",
            "1:18: expected label name, got \"=\"",
        ),
        (b"foo 1_2\n", "1:5: bad number \"1_2\""),
        (b"foo 0x1p-3\n", "1:5: bad number \"0x1p-3\""),
        (b"foo 0 1_2\n", "1:7: bad timestamp \"1_2\""),
        (b"{a=\"ok\"} 1", "1:1: expected metric name, got \"{\""),
        (
            b"# TYPE #\n",
            "1:8: expected metric name after TYPE, got \"#\"",
        ),
        (
            b"# HELP #\n",
            "1:8: expected metric name after HELP, got \"#\"",
        ),
        (b"a{b=\x00\"ssss\"} 1\n", "1:5: expected label value"),
        (
            b"a{b\x00=\"hiih\"}\t1",
            "1:4: expected \"=\" after label name",
        ),
        (b"a 0 1\x00", "1:5: bad timestamp"),
    ];
    for (input, want) in cases {
        let got = Parser::new(input, Format::Text)
            .find_map(Result::err)
            .map(|e| e.to_string())
            .unwrap_or_else(|| "accepted".into());
        assert!(
            got.starts_with(want),
            "{:?}: got {got:?}, want {want:?}",
            String::from_utf8_lossy(input)
        );
    }
}

/// The error inputs of Prometheus's OpenMetrics parser tests: each is
/// rejected here too (the parser alone, not the lint rules).
#[test]
fn rejects_what_the_openmetrics_parser_rejects() {
    let cases = [
        "",
        "\n",
        "metric",
        "metric 1",
        "metric 1\n",
        "metric_total 1 # {aa=\"bb\"} 4",
        "a\n#EOF\n",
        "\n\n#EOF\n",
        " a 1\n#EOF\n",
        "9\n#EOF\n",
        "# TYPE u untyped\n#EOF\n",
        "# TYPE c counter \n#EOF\n",
        "#  TYPE c counter\n#EOF\n",
        "# TYPE \n#EOF\n",
        "# TYPE m\n#EOF\n",
        "# UNIT metric suffix\n#EOF\n",
        "# UNIT metricsuffix suffix\n#EOF\n",
        "# UNIT m suffix\n#EOF\n",
        "# UNIT \n#EOF\n",
        "# UNIT m\n#EOF\n",
        "# HELP \n#EOF\n",
        "# HELP m\n#EOF\n",
        "a\t1\n#EOF\n",
        "a 1\t2\n#EOF\n",
        "a 1 2 \n#EOF\n",
        "a 1 2 #\n#EOF\n",
        "a 1 1z\n#EOF\n",
        " # EOF\n",
        "# EOF\na 1",
        "# EOF\n\n",
        "# EOFa 1",
        "#\tTYPE c counter\n",
        "# TYPE c  counter\n",
        "a 1 1 1\n# EOF\n",
        "a{b='c'} 1\n# EOF\n",
        "a{,b=\"c\"} 1\n# EOF\n",
        "a{b=\"c\"d=\"e\"} 1\n# EOF\n",
        "a{b=\"c\",,d=\"e\"} 1\n# EOF\n",
        "a{b=\n# EOF\n",
        "a true\n",
        "something_weird{problem=\"\n# EOF\n",
        "empty_label_name{=\"\"} 0\n# EOF\n",
        "foo 1_2\n\n# EOF\n",
        "foo 0x1p-3\n\n# EOF\n",
        "foo 0 1_2\n\n# EOF\n",
        "custom_metric_total 1 # {aa=bb}\n# EOF\n",
        "custom_metric_total 1 # {aa=\"bb\"}\n# EOF\n",
        "custom_metric_total 1 # {bb}",
        "custom_metric_total 1 # {bb, a=\"dd\"}",
        "custom_metric_total 1 # {aa=\"bb\",,cc=\"dd\"} 1",
        "custom_metric_total 1 # {aa=\"bb\"} 1_2",
        "custom_metric_total 1 # {aa=\"bb\"} true",
        "custom_metric_total 1 # {aa=\"bb\",cc=}",
        "{b=\"c\",} 1",
        "a 1 NaN",
        "a 1 -Inf",
        "a 1 Inf",
        "# TYPE hhh histogram\nhhh_bucket{le=\"+Inf\"} 1 # {aa=\"bb\"} 4 NaN",
        "#",
        "# H",
    ];
    for input in cases {
        let error = Parser::new(input.as_bytes(), Format::OpenMetrics).find_map(Result::err);
        assert!(error.is_some(), "accepted {input:?}");
    }
    let accepted = [
        "# EOF",
        "# EOF\n",
        "null_byte_metric{a=\"abc\u{0}\"} 1\n# EOF\n",
        "a{b=\"\u{0}\"} 1\n# EOF",
    ];
    for input in accepted {
        let errors: Vec<_> = Parser::new(input.as_bytes(), Format::OpenMetrics)
            .filter_map(Result::err)
            .collect();
        assert!(errors.is_empty(), "{input:?}: {errors:?}");
    }
}

/// Our samples of a text exposition: name → labels → value.
fn ours(text: &str) -> BTreeMap<(String, Vec<(String, String)>), f64> {
    let mut out = BTreeMap::new();
    let mut labels = Labels::default();
    for entry in Parser::new(text.as_bytes(), Format::Text) {
        if let Ok(Entry::Sample(s)) = entry {
            labels.clear();
            s.labels_into(&mut labels);
            let mut pairs: Vec<(String, String)> = labels
                .iter()
                .filter(|l| l.name != "__name__")
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect();
            pairs.sort();
            out.insert((s.name.to_owned(), pairs), s.value);
        }
    }
    out
}

#[test]
fn agrees_with_prometheus_parse_on_a_realistic_exposition() {
    let text = relay::demo::exposition(3000, 3600.0);
    let mine = ours(&text);
    let theirs = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("prometheus-parse");
    let mut compared = 0;
    for s in &theirs.samples {
        let mut labels: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.sort();
        match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => {
                assert_eq!(
                    mine.get(&(s.metric.clone(), labels.clone())),
                    Some(v),
                    "{} {labels:?}",
                    s.metric
                );
                compared += 1;
            }
            prometheus_parse::Value::Histogram(buckets) => {
                for b in buckets {
                    let mut with_le = labels.clone();
                    let le = if b.less_than.is_infinite() {
                        "+Inf".to_owned()
                    } else {
                        format!("{}", b.less_than)
                    };
                    with_le.push(("le".into(), le));
                    with_le.sort();
                    assert_eq!(
                        mine.get(&(format!("{}_bucket", s.metric), with_le.clone())),
                        Some(&b.count),
                        "{} {with_le:?}",
                        s.metric
                    );
                    compared += 1;
                }
            }
            prometheus_parse::Value::Summary(_) => {}
        }
    }
    assert_eq!(compared, mine.len(), "every sample compared once");
    assert!(compared > 2500, "{compared}");
}

/// Python's prometheus_client reads what our renderer writes the same way we
/// do. `scripts/test` provides the venv as RELAY_TEST_PYTHON.
#[test]
fn python_prometheus_client_reads_our_rendering() {
    let python = match std::env::var("RELAY_TEST_PYTHON") {
        Ok(p) => p,
        Err(_) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "RELAY_TEST_PYTHON is not set: run ./scripts/test, which creates the venv"
            );
            eprintln!("note: RELAY_TEST_PYTHON not set; skipping (CI=true would fail here)");
            return;
        }
    };
    let mut rendered = Vec::new();
    render::family_header(
        &mut rendered,
        Format::Text,
        "t",
        Some("Escapes \\ and\nnewlines."),
        MetricType::Gauge,
        None,
    );
    let values = [
        1.0,
        0.25,
        1e6,
        1.5e-7,
        123456.789,
        f64::INFINITY,
        f64::NEG_INFINITY,
        5e-324,
        f64::MAX,
    ];
    for (i, v) in values.iter().enumerate() {
        let value = format!("v{i} \"quoted\" \\ back\nslash ü");
        let labels: Labels = [("__name__", "t"), ("case", &value)].into_iter().collect();
        render::sample(
            &mut rendered,
            Format::Text,
            &labels,
            *v,
            Some(1_700_000_000_123),
        );
    }
    let script = "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as p\nfor f in p(sys.stdin.read()):\n  print('HELP', repr(f.documentation))\n  for s in f.samples:\n    print(repr(s.labels['case']), repr(float(s.value)), repr(s.timestamp))\n";
    let mut python = Command::new(python);
    python.args(["-c", script]);
    let out = common::pipe(python, &rendered);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("HELP 'Escapes \\\\ and\\nnewlines.'"));
    let pyfloats = [
        "1.0",
        "0.25",
        "1000000.0",
        "1.5e-07",
        "123456.789",
        "inf",
        "-inf",
        "5e-324",
        "1.7976931348623157e+308",
    ];
    for (i, want) in pyfloats.iter().enumerate() {
        let line = lines.next().unwrap_or_default();
        assert_eq!(
            line,
            format!("'v{i} \"quoted\" \\\\ back\\nslash ü' {want} 1700000000.123"),
            "sample {i}"
        );
    }
}

/// A label value made of the characters escaping has to get right.
fn label_value() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just('\\'),
            Just('"'),
            Just('\n'),
            Just('ü'),
            Just('{'),
            Just(' '),
            proptest::char::range('a', 'z')
        ],
        0..12,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn render_then_parse_round_trips(
        name in "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}",
        pairs in proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,8}", label_value(), 0..5),
        v in value(),
        ts in proptest::option::of(any::<i64>()),
        om in any::<bool>(),
    ) {
        let format = if om { Format::OpenMetrics } else { Format::Text };
        let pairs: BTreeMap<String, String> = pairs.into_iter().filter(|(k, _)| k != "__name__").collect();
        let mut labels: Labels = [("__name__", name.as_str())].into_iter().collect();
        for (k, val) in &pairs {
            labels.push(k.as_str(), val.as_str());
        }
        // OpenMetrics timestamps are seconds as floats: keep them in the range a double holds exactly.
        let ts = ts.map(|t| if om { t % (1 << 50) } else { t });
        let mut out = Vec::new();
        render::family_header(&mut out, format, &name, Some("help \\ with\nnewline"), MetricType::Unknown, None);
        render::sample(&mut out, format, &labels, v, ts);
        render::end(&mut out, format);
        let entries: Vec<Entry> = Parser::new(&out, format).collect::<Result<_, _>>()
            .map_err(|e| TestCaseError::fail(format!("{e} in {:?}", String::from_utf8_lossy(&out))))?;
        prop_assert_eq!(&entries[0], &Entry::Help { name: &name, text: "help \\ with\nnewline".into() });
        let Entry::Sample(s) = &entries[2] else { return Err(TestCaseError::fail("no sample")) };
        let mut back = Labels::default();
        s.labels_into(&mut back);
        prop_assert_eq!(back, labels);
        prop_assert!(s.value.to_bits() == v.to_bits() || (s.value.is_nan() && v.is_nan()), "{} vs {}", s.value, v);
        prop_assert_eq!(s.timestamp_ms, ts);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_errors_point_inside(input in proptest::collection::vec(any::<u8>(), 0..400), om in any::<bool>()) {
        let format = if om { Format::OpenMetrics } else { Format::Text };
        let lines = input.split(|b| *b == b'\n').count() + 1;
        for e in check(&input, format) {
            prop_assert!(e.line >= 1 && e.line <= lines, "{e} beyond {lines} lines");
            prop_assert!(e.col >= 1);
        }
        for entry in Parser::new(&input, format) {
            if let Ok(Entry::Sample(s)) = entry {
                let mut labels = Labels::default();
                s.labels_into(&mut labels);
                prop_assert_eq!(labels.metric_name(), s.name);
            }
        }
    }

    #[test]
    fn quote_and_newline_heavy_text_never_panics(input in "[a_{}\"\\\\\n=, 1#]{0,80}") {
        // The alphabet that drives label values across lines (a raw newline
        // in a quoted value is accepted in text, as Prometheus does).
        let lines = input.split('\n').count() + 1;
        for e in check(input.as_bytes(), Format::Text) {
            prop_assert!(e.line >= 1 && e.line <= lines && e.col >= 1, "{e} beyond {lines} lines");
        }
        let mut labels = Labels::default();
        for entry in Parser::new(input.as_bytes(), Format::Text) {
            if let Ok(Entry::Sample(s)) = entry {
                labels.clear();
                s.labels_into(&mut labels);
                prop_assert_eq!(labels.metric_name(), s.name);
            }
        }
    }

    #[test]
    fn mutated_expositions_never_panic(pos in 0usize..600, byte in any::<u8>(), om in any::<bool>()) {
        let (format, base) = if om { (Format::OpenMetrics, VALID_OPENMETRICS) } else { (Format::Text, VALID_TEXT) };
        let mut input = base.as_bytes().to_vec();
        let at = pos % input.len();
        input[at] = byte;
        let problems = check(&input, format);
        // Changing one byte can break the input, but an error is always located.
        for e in &problems {
            prop_assert!(e.line >= 1 && e.col >= 1);
        }
    }
}
