use prost::Message;

use super::*;

fn label(name: &str, value: &str) -> pb::LabelPair {
    pb::LabelPair {
        name: name.into(),
        value: value.into(),
    }
}

fn family(name: &str, kind: pb::MetricType, metric: Vec<pb::Metric>) -> pb::MetricFamily {
    pb::MetricFamily {
        name: name.into(),
        help: "Help.".into(),
        r#type: kind as i32,
        metric,
        unit: String::new(),
    }
}

fn body(families: &[pb::MetricFamily]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in families {
        out.extend(f.encode_length_delimited_to_vec());
    }
    out
}

/// Every sample of `body` as `key value` lines (key as [`ProtoSample::key_into`]
/// writes it, closed with `}` when it has labels), plus `@ts`, `st=` and
/// `# exemplar` when present; histograms as `name histogram`.
fn lines(body: &[u8], options: Options) -> Result<Vec<String>, ProtoError> {
    let mut out = Vec::new();
    let mut scratch = Scratch::default();
    let (mut pos, mut number) = (0, 1);
    while pos < body.len() {
        let rest = &body[pos..];
        let frame = next_numbered_frame(rest, pos, number, 0, false)?.expect("whole body");
        let family = decode(rest, frame)?;
        for_each_sample(&family, frame, options, &mut scratch, |s| {
            let mut key = Vec::new();
            s.key_into(&mut key);
            let mut line = String::from_utf8(key).unwrap();
            if line.contains('{') {
                line.push('}');
            }
            match s.value {
                SampleValue::Float(v) => line.push_str(&format!(" {v}")),
                SampleValue::Histogram(_) => line.push_str(" histogram"),
            }
            if let Some(ts) = s.timestamp_ms {
                line.push_str(&format!(" @{ts}"));
            }
            if let Some(st) = s.start_timestamp_ms {
                line.push_str(&format!(" st={st}"));
            }
            if let Some(e) = s.exemplar {
                line.push_str(&format!(" # {} {} {:?}", e.labels, e.value, e.timestamp_ms));
            }
            out.push(line);
            Ok::<_, ProtoError>(())
        })?;
        pos += frame.end;
        number += 1;
    }
    Ok(out)
}

fn counter(value: f64) -> pb::Metric {
    pb::Metric {
        counter: Some(pb::Counter {
            value,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn bucket(le: f64, count: u64) -> pb::Bucket {
    pb::Bucket {
        cumulative_count: count,
        upper_bound: le,
        ..Default::default()
    }
}

#[test]
fn every_type_gives_the_series_prometheus_makes() {
    let families = [
        family(
            "c_total",
            pb::MetricType::Counter,
            vec![pb::Metric {
                label: vec![label("a", "x\"y")],
                timestamp_ms: 1500,
                ..counter(3.0)
            }],
        ),
        family(
            "g",
            pb::MetricType::Gauge,
            vec![pb::Metric {
                gauge: Some(pb::Gauge { value: -2.5 }),
                ..Default::default()
            }],
        ),
        family(
            "u",
            pb::MetricType::Untyped,
            vec![pb::Metric {
                untyped: Some(pb::Untyped { value: 7.0 }),
                ..Default::default()
            }],
        ),
        family(
            "s",
            pb::MetricType::Summary,
            vec![pb::Metric {
                summary: Some(pb::Summary {
                    sample_count: 4,
                    sample_sum: 10.0,
                    quantile: vec![
                        pb::Quantile {
                            quantile: 0.5,
                            value: 2.0,
                        },
                        pb::Quantile {
                            quantile: 1.0,
                            value: 4.0,
                        },
                    ],
                    created_timestamp: Some(pb::Timestamp {
                        seconds: 12,
                        nanos: 345_678_901,
                    }),
                }),
                ..Default::default()
            }],
        ),
        family(
            "h",
            pb::MetricType::Histogram,
            vec![pb::Metric {
                label: vec![label("path", "/")],
                histogram: Some(pb::Histogram {
                    sample_count: 5,
                    sample_sum: 1.5,
                    bucket: vec![bucket(0.00001, 1), bucket(1.0, 3), bucket(1e6, 4)],
                    ..Default::default()
                }),
                ..Default::default()
            }],
        ),
        family("empty", pb::MetricType::Gauge, vec![]),
    ];
    let got = lines(&body(&families), Options::default()).unwrap();
    assert_eq!(
        got,
        [
            r#"c_total{a="x\"y"} 3 @1500"#,
            "g -2.5",
            "u 7",
            "s_count 4 st=12345",
            "s_sum 10 st=12345",
            r#"s{quantile="0.5"} 2 st=12345"#,
            r#"s{quantile="1.0"} 4 st=12345"#,
            r#"h_count{path="/"} 5"#,
            r#"h_sum{path="/"} 1.5"#,
            r#"h_bucket{path="/",le="1e-05"} 1"#,
            r#"h_bucket{path="/",le="1.0"} 3"#,
            r#"h_bucket{path="/",le="1e+06"} 4"#,
            r#"h_bucket{path="/",le="+Inf"} 5"#,
        ]
    );
}

#[test]
fn floats_are_formatted_as_prometheus_formats_le_and_quantile() {
    let cases = [
        (1.0, "1.0"),
        (0.0, "0.0"),
        (-0.0, "0.0"),
        (-1.0, "-1.0"),
        (0.25, "0.25"),
        (100.0, "100.0"),
        (123456.0, "123456.0"),
        (1e6, "1e+06"),
        (1e-5, "1e-05"),
        (0.0001, "0.0001"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
        (f64::NAN, "NaN"),
    ];
    for (v, want) in cases {
        let mut out = Vec::new();
        format_float(&mut out, v);
        assert_eq!(String::from_utf8(out).unwrap(), want, "{v}");
    }
}

#[test]
fn an_inf_bucket_given_by_the_target_is_not_added_again() {
    let h = family(
        "h",
        pb::MetricType::Histogram,
        vec![pb::Metric {
            histogram: Some(pb::Histogram {
                sample_count: 2,
                sample_count_float: 2.5,
                sample_sum: 1.0,
                bucket: vec![
                    bucket(1.0, 1),
                    pb::Bucket {
                        cumulative_count_float: 2.5,
                        upper_bound: f64::INFINITY,
                        exemplar: Some(pb::Exemplar {
                            label: vec![label("trace", "t1")],
                            value: 9.0,
                            timestamp: Some(pb::Timestamp {
                                seconds: 2,
                                nanos: 0,
                            }),
                        }),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        }],
    );
    let got = lines(&body(&[h]), Options::default()).unwrap();
    assert_eq!(
        got,
        [
            "h_count 2.5",
            "h_sum 1",
            r#"h_bucket{le="1.0"} 1"#,
            r#"h_bucket{le="+Inf"} 2.5 # {trace="t1"} 9 Some(2000)"#,
        ]
    );
}

fn native(with_buckets: bool, float: bool) -> pb::Histogram {
    let mut h = pb::Histogram {
        sample_count: 6,
        sample_sum: -3.0,
        schema: 2,
        zero_threshold: 0.001,
        zero_count: 1,
        negative_span: vec![pb::BucketSpan {
            offset: -1,
            length: 1,
        }],
        negative_delta: vec![2],
        positive_span: vec![
            pb::BucketSpan {
                offset: 0,
                length: 2,
            },
            pb::BucketSpan {
                offset: 3,
                length: 1,
            },
        ],
        positive_delta: vec![1, 0, -1],
        ..Default::default()
    };
    if float {
        h.sample_count_float = 6.5;
        h.zero_count_float = 1.5;
        h.negative_count = vec![2.0];
        h.positive_count = vec![1.0, 1.0, 1.0];
        h.negative_delta.clear();
        h.positive_delta.clear();
    }
    if with_buckets {
        h.bucket = vec![bucket(0.5, 3), bucket(2.0, 6)];
    }
    h
}

fn histograms(body: &[u8], options: Options) -> Result<(Vec<Histogram>, Vec<String>), ProtoError> {
    let (mut natives, mut floats) = (Vec::new(), Vec::new());
    let frame = next_frame(body, 0, 0, false)?.expect("whole");
    let family = decode(body, frame)?;
    for_each_sample(&family, frame, options, &mut Scratch::default(), |s| {
        match s.value {
            SampleValue::Histogram(h) => natives.push(h.clone()),
            SampleValue::Float(v) => {
                let mut key = Vec::new();
                s.key_into(&mut key);
                let mut key = String::from_utf8(key).unwrap();
                if key.contains('{') {
                    key.push('}');
                }
                floats.push(format!("{key} {v}"));
            }
        }
        Ok::<_, ProtoError>(())
    })?;
    Ok((natives, floats))
}

#[test]
fn native_histograms_decode_fully_into_the_storage_types() {
    let both = Options {
        native: true,
        classic: false,
    };
    let h = family(
        "n",
        pb::MetricType::Histogram,
        vec![pb::Metric {
            histogram: Some(native(false, false)),
            ..Default::default()
        }],
    );
    let (natives, floats) = histograms(&body(&[h]), both).unwrap();
    assert!(floats.is_empty(), "{floats:?}");
    assert_eq!(
        natives,
        [Histogram {
            schema: 2,
            zero_threshold: 0.001,
            sum: -3.0,
            positive_spans: vec![
                BucketSpan {
                    offset: 0,
                    length: 2
                },
                BucketSpan {
                    offset: 3,
                    length: 1
                }
            ],
            negative_spans: vec![BucketSpan {
                offset: -1,
                length: 1
            }],
            counts: HistogramCounts::Integer {
                count: 6,
                zero_count: 1,
                positive_deltas: vec![1, 0, -1],
                negative_deltas: vec![2],
            },
        }]
    );
    let h = family(
        "n",
        pb::MetricType::Histogram,
        vec![pb::Metric {
            histogram: Some(native(false, true)),
            ..Default::default()
        }],
    );
    let (natives, _) = histograms(&body(&[h]), both).unwrap();
    assert_eq!(
        natives[0].counts,
        HistogramCounts::Float {
            count: 6.5,
            zero_count: 1.5,
            positive: vec![1.0, 1.0, 1.0],
            negative: vec![2.0],
        }
    );
}

#[test]
fn a_histogram_with_both_views_gives_what_the_options_ask() {
    let h = family(
        "b",
        pb::MetricType::Histogram,
        vec![pb::Metric {
            histogram: Some(native(true, false)),
            ..Default::default()
        }],
    );
    let bytes = body(&[h]);
    let classic_series = [
        "b_count 6",
        "b_sum -3",
        "b_bucket{le=\"0.5\"} 3",
        "b_bucket{le=\"2.0\"} 6",
        "b_bucket{le=\"+Inf\"} 6",
    ];
    // Without native histograms (Prometheus 3's default): classic only.
    let (natives, floats) = histograms(&bytes, Options::default()).unwrap();
    assert!(natives.is_empty());
    assert_eq!(floats, classic_series);
    // Native only (scrape_native_histograms without always_scrape_classic).
    let native_only = Options {
        native: true,
        classic: false,
    };
    let (natives, floats) = histograms(&bytes, native_only).unwrap();
    assert_eq!(natives.len(), 1);
    assert!(floats.is_empty(), "{floats:?}");
    // Both.
    let (natives, floats) = histograms(
        &bytes,
        Options {
            native: true,
            classic: true,
        },
    )
    .unwrap();
    assert_eq!(natives.len(), 1);
    assert_eq!(floats, classic_series);
    // A native-only histogram read without native histograms: count, sum
    // and a lone +Inf bucket.
    let h = family(
        "n",
        pb::MetricType::Histogram,
        vec![pb::Metric {
            histogram: Some(native(false, false)),
            ..Default::default()
        }],
    );
    let (_, floats) = histograms(&body(&[h]), Options::default()).unwrap();
    assert_eq!(floats, ["n_count 6", "n_sum -3", "n_bucket{le=\"+Inf\"} 6"]);
}

#[test]
fn frames_are_found_as_the_body_arrives_and_refused_past_the_limit() {
    let bytes = body(&[family("c", pb::MetricType::Counter, vec![counter(1.0)])]);
    // Every cut short of the whole message waits for more.
    for cut in 0..bytes.len() {
        assert_eq!(next_frame(&bytes[..cut], 0, 0, true), Ok(None), "cut {cut}");
    }
    let frame = next_frame(&bytes, 0, 0, true).unwrap().unwrap();
    assert_eq!((frame.start, frame.end), (1, bytes.len()));
    // The whole body within a limit of exactly its size passes.
    assert!(next_frame(&bytes, 0, bytes.len(), false).unwrap().is_some());
    // A length prefix of 2^62 bytes: refused from its 9 bytes alone.
    let mut huge = Vec::new();
    crate::varint::put(&mut huge, 1 << 62);
    let e = next_numbered_frame(&huge, 100, 3, 1 << 20, true).unwrap_err();
    assert_eq!(
        e.to_string(),
        "message 3 at byte 100: message length 4611686018427387904 goes past the body size limit of 1048576 bytes"
    );
    // One byte over the limit.
    let e = next_frame(&bytes, 0, bytes.len() - 1, true).unwrap_err();
    assert!(e.message.contains("past the body size limit"), "{e}");
    // Truncated at the end of the body.
    let e = next_frame(&bytes[..bytes.len() - 2], 0, 0, false).unwrap_err();
    assert_eq!(
        e.message,
        format!(
            "truncated message: length prefix says {} bytes, the body ends after {}",
            bytes.len() - 1,
            bytes.len() - 3
        )
    );
    let e = next_frame(&[0x80], 0, 0, false).unwrap_err();
    assert_eq!(e.message, "the body ends inside a length prefix (1 bytes)");
    let e = next_frame(&[0xff; 11], 0, 0, true).unwrap_err();
    assert_eq!(e.message, "invalid varint length prefix");
}

#[test]
fn what_prometheus_refuses_is_refused_with_where() {
    let with = |labels: Vec<pb::LabelPair>, kind| {
        let metric = pb::Metric {
            label: labels,
            ..counter(1.0)
        };
        lines(
            &body(&[family("m", kind, vec![metric])]),
            Options::default(),
        )
        .unwrap_err()
        .to_string()
    };
    assert_eq!(
        with(
            vec![label("a", "1"), label("a", "2")],
            pb::MetricType::Counter
        ),
        r#"message 1 at byte 0 (metric family "m"): duplicate label name "a""#
    );
    assert_eq!(
        with(vec![label("le", "1")], pb::MetricType::Histogram),
        r#"message 1 at byte 0 (metric family "m"): label "le" is reserved here"#
    );
    assert_eq!(
        with(vec![label("__name__", "x")], pb::MetricType::Gauge),
        r#"message 1 at byte 0 (metric family "m"): label "__name__" is reserved here"#
    );
    assert_eq!(
        with(vec![label("", "x")], pb::MetricType::Gauge),
        r#"message 1 at byte 0 (metric family "m"): empty label name"#
    );
    let mut unknown = family("m", pb::MetricType::Gauge, vec![counter(1.0)]);
    unknown.r#type = 9;
    let ok = family("ok", pb::MetricType::Gauge, vec![counter(1.0)]);
    let bytes = body(&[ok, unknown]);
    let second = bytes[0] as usize + 1;
    assert_eq!(
        lines(&bytes, Options::default()).unwrap_err().to_string(),
        format!(r#"message 2 at byte {second} (metric family "m"): unknown metric type 9"#)
    );
    let mut h = native(false, false);
    h.positive_delta.pop();
    let bad = family(
        "n",
        pb::MetricType::Histogram,
        vec![pb::Metric {
            histogram: Some(h),
            ..Default::default()
        }],
    );
    let native_on = Options {
        native: true,
        classic: false,
    };
    assert_eq!(
        lines(&body(&[bad]), native_on).unwrap_err().message,
        "native histogram, positive side: spans require 3 buckets, have 2"
    );
    // Not a MetricFamily at all.
    let e = lines(&[3, 0xff, 0xff, 0xff], Options::default()).unwrap_err();
    assert_eq!((e.number, e.offset), (1, 0));
}

#[test]
fn keys_differ_for_different_label_sets_and_match_the_text_form() {
    let key = |labels: Vec<pb::LabelPair>| {
        let labels: Vec<wire::LabelPair<'_>> = labels
            .iter()
            .map(|l| wire::LabelPair {
                name: &l.name,
                value: &l.value,
            })
            .collect();
        let mut out = Vec::new();
        ProtoSample {
            name: "a",
            labels: &labels,
            extra: None,
            value: SampleValue::Float(0.0),
            timestamp_ms: None,
            start_timestamp_ms: None,
            exemplar: None,
        }
        .key_into(&mut out);
        String::from_utf8(out).unwrap()
    };
    assert_eq!(key(vec![]), "a");
    assert_eq!(
        key(vec![label("b", "1"), label("c", "2")]),
        r#"a{b="1",c="2""#
    );
    assert_ne!(
        key(vec![label("b", "1"), label("c", "2")]),
        key(vec![label("b=\"1\",c", "2")])
    );
}

/// Hand-made wire bytes: a key, then the value.
fn field(out: &mut Vec<u8>, number: u64, wire_type: u64, value: &[u8]) {
    crate::varint::put(out, number << 3 | wire_type);
    if wire_type == 2 {
        crate::varint::put(out, value.len() as u64);
    }
    out.extend_from_slice(value);
}

fn varint_bytes(v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    crate::varint::put(&mut out, v);
    out
}

#[test]
fn the_wire_decoder_takes_unpacked_fields_and_skips_unknown_ones() {
    // Histogram: count 3, a span {offset 0 (zigzag 0), length 2}, deltas
    // 1 and 1 unpacked (zigzag 2 each), an unknown varint field 99 and an
    // unknown length-delimited field 98.
    let mut span = Vec::new();
    field(&mut span, 1, 0, &varint_bytes(0));
    field(&mut span, 2, 0, &varint_bytes(2));
    let mut h = Vec::new();
    field(&mut h, 1, 0, &varint_bytes(3));
    field(&mut h, 12, 2, &span);
    field(&mut h, 13, 0, &varint_bytes(2));
    field(&mut h, 13, 0, &varint_bytes(2));
    field(&mut h, 99, 0, &varint_bytes(7));
    field(&mut h, 98, 2, b"ignored");
    let mut metric = Vec::new();
    field(&mut metric, 7, 2, &h);
    field(&mut metric, 97, 1, &1.5f64.to_le_bytes());
    let mut fam = Vec::new();
    field(&mut fam, 1, 2, b"h");
    field(&mut fam, 3, 0, &varint_bytes(4));
    field(&mut fam, 4, 2, &metric);
    let mut body = varint_bytes(fam.len() as u64);
    body.extend_from_slice(&fam);
    let (natives, floats) = histograms(
        &body,
        Options {
            native: true,
            classic: false,
        },
    )
    .unwrap();
    assert!(floats.is_empty());
    assert_eq!(
        natives[0].counts,
        HistogramCounts::Integer {
            count: 3,
            zero_count: 0,
            positive_deltas: vec![1, 1],
            negative_deltas: vec![],
        }
    );
    assert_eq!(
        natives[0].positive_spans,
        [BucketSpan {
            offset: 0,
            length: 2
        }]
    );
}

#[test]
fn the_wire_decoder_refuses_bad_utf8_and_wrong_wire_types() {
    let frame_of = |fam: &[u8]| {
        let mut body = varint_bytes(fam.len() as u64);
        body.extend_from_slice(fam);
        body
    };
    let mut pair = Vec::new();
    field(&mut pair, 1, 2, b"a\xff");
    field(&mut pair, 2, 2, b"v");
    let mut metric = Vec::new();
    field(&mut metric, 1, 2, &pair);
    let mut fam = Vec::new();
    field(&mut fam, 1, 2, b"g");
    field(&mut fam, 3, 0, &varint_bytes(1));
    field(&mut fam, 4, 2, &metric);
    let e = lines(&frame_of(&fam), Options::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"message 1 at byte 0 (metric family "g"): LabelPair: field 1 is not valid UTF-8"#
    );
    // The name as a varint instead of a string.
    let mut fam = Vec::new();
    field(&mut fam, 1, 0, &varint_bytes(5));
    let e = lines(&frame_of(&fam), Options::default()).unwrap_err();
    assert_eq!(e.message, "MetricFamily: field 1 has the wrong wire type");
    // A string field longer than its message.
    let mut fam = Vec::new();
    crate::varint::put(&mut fam, 1 << 3 | 2);
    crate::varint::put(&mut fam, 50);
    fam.extend_from_slice(b"short");
    let e = lines(&frame_of(&fam), Options::default()).unwrap_err();
    assert_eq!(
        e.message,
        "MetricFamily: a field runs past the message's end"
    );
}
