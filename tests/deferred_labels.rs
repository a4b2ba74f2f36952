//! A scrape loop's parser only delimits label lists and checks one when its
//! series cache does not know the key (`Parser::deferring_labels`). For any
//! body, that must give exactly what the parser gives checking every list:
//! the same samples, and the same first error at the same line and column,
//! whether the cache is cold or knows every valid key of the body already.

use std::collections::HashSet;

use proptest::prelude::*;

use relay::exposition::{Entry, Format, Parser};

/// Samples as `name|labels|value bits|timestamp`, then the first error.
type Outcome = (Vec<String>, Option<String>);

fn describe(name: &str, labels: &str, value: f64, ts: Option<i64>) -> String {
    format!("{name}|{labels}|{}|{ts:?}", value.to_bits())
}

fn strict(body: &[u8], format: Format) -> (Outcome, HashSet<Vec<u8>>) {
    let (mut samples, mut keys) = (Vec::new(), HashSet::new());
    for entry in Parser::new(body, format) {
        match entry {
            Ok(Entry::Sample(s)) => {
                keys.insert(s.series_in(body).to_vec());
                samples.push(describe(&s.name, s.labels_src, s.value, s.timestamp_ms));
            }
            Ok(_) => {}
            Err(e) => return ((samples, Some(e.to_string())), keys),
        }
    }
    ((samples, None), keys)
}

/// Deferring, with `known` keys not checked again, as the cache does.
fn deferred(body: &[u8], format: Format, known: &HashSet<Vec<u8>>) -> Outcome {
    let mut samples = Vec::new();
    let mut parser = Parser::new(body, format).deferring_labels();
    while let Some(entry) = parser.next() {
        match entry {
            Ok(Entry::Sample(s)) => {
                if !known.contains(&s.series_in(body).to_vec()) {
                    if let Err(e) = parser.check_labels() {
                        return (samples, Some(e.to_string()));
                    }
                }
                samples.push(describe(&s.name, s.labels_src, s.value, s.timestamp_ms));
            }
            Ok(_) => {}
            Err(e) => return (samples, Some(e.to_string())),
        }
    }
    (samples, None)
}

/// Lines near the grammar: names, braces, quotes, escapes, commas, blanks,
/// `#` and exemplars in every order, and valid lines to know.
fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(r#"a{x="1",y="2"} 1"#.to_owned()),
        Just(r#"a{x="}#\"",y="{"} 2 # {t="1"} 3"#.to_owned()),
        "[ab]\\{[xy=\",#}{\\\\ 1]{0,16}\\}[ 0-9}#{\"=x]{0,12}",
        "[ab][ {][xy=\",#}{\\\\ 1]{0,10}[ 0-9}#{]{0,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn deferred_checks_agree_with_checking_every_list(
        lines in prop::collection::vec(line(), 1..6),
        om in any::<bool>(),
    ) {
        let format = if om { Format::OpenMetrics } else { Format::Text };
        let mut body = lines.join("\n");
        body.push('\n');
        if om {
            body.push_str("# EOF\n");
        }
        let (want, valid_keys) = strict(body.as_bytes(), format);
        prop_assert_eq!(&deferred(body.as_bytes(), format, &HashSet::new()), &want, "cold: {:?}", body);
        prop_assert_eq!(&deferred(body.as_bytes(), format, &valid_keys), &want, "warm: {:?}", body);
    }
}

/// The property above can fail: without the check on a miss, a broken list
/// passes for a sample.
#[test]
fn a_broken_list_is_only_caught_by_the_check() {
    let body = b"a{x=\"1\",x=\"2\"} 1\n";
    let mut parser = Parser::new(body, Format::Text).deferring_labels();
    assert!(matches!(parser.next(), Some(Ok(Entry::Sample(_)))));
    let error = parser.check_labels().expect_err("a duplicate label name");
    assert_eq!(error.to_string(), "1:9: label name \"x\" is not unique");
    assert_eq!(
        strict(body, Format::Text).0 .1.as_deref(),
        Some("1:9: label name \"x\" is not unique")
    );
}

/// Found by the fuzzer: a text label value left open on its line goes on
/// over the next lines (as in Prometheus's text lexer); the line's last `}`
/// sits inside that value, so the list must not be delimited there.
#[test]
fn a_value_open_at_the_end_of_its_line_is_parsed_as_the_strict_parser_does() {
    let bodies: [&[u8]; 3] = [
        b"s{quantile=\"0.5&} 4\ns_sum 5\ns_c0.5\"} 4\ns_sum 5\ns_couronmount 6\n",
        b"s{q=\"a\",r=\"} 4\nx\"} 5\n",
        b"s{q=\"a\\\"} 4\nx\"} 5\n",
    ];
    for body in bodies {
        let (want, _) = strict(body, Format::Text);
        assert!(want.1.is_none(), "valid text: {want:?}");
        assert_eq!(deferred(body, Format::Text, &HashSet::new()), want);
    }
}
