//! The protobuf rules of `relay check metrics --format protobuf`: what
//! Prometheus's protobuf parser refuses (a broken or truncated frame, a
//! message that does not decode, an empty name, an unknown type, reserved,
//! empty or duplicate label names, native histogram spans that do not match
//! their buckets), plus a native histogram schema Prometheus 3 cannot store
//! and a family name given twice. A problem's `line:col` is the message's
//! number and the 1-based byte offset of its length prefix.

use std::collections::HashSet;

use crate::exposition::parse::ParseError;
use crate::exposition::proto::{self, wire, Options, ProtoError, Scratch};

/// Schemas Prometheus 3 keeps: -4..=8 as they are, 9..=52 reduced to 8.
const SCHEMAS: std::ops::RangeInclusive<i32> = -4..=52;

/// Every problem of a delimited protobuf body, unsorted. A broken frame
/// ends the check: nothing after it can be found.
pub(super) fn check(input: &[u8]) -> Vec<ParseError> {
    let mut problems = Vec::new();
    let mut names = HashSet::new();
    let mut scratch = Scratch::default();
    let (mut pos, mut number) = (0, 1);
    let options = Options {
        native: true,
        classic: true,
    };
    while pos < input.len() {
        let rest = &input[pos..];
        let frame = match proto::next_numbered_frame(rest, pos, number, 0, false) {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                problems.push(located(e));
                break;
            }
        };
        pos += frame.end;
        number += 1;
        let family = match proto::decode(rest, frame) {
            Ok(family) => family,
            Err(e) => {
                problems.push(located(e));
                continue;
            }
        };
        let at = |message: String| {
            located(ProtoError {
                number: frame.number,
                offset: frame.offset,
                family: format!(" (metric family {:?})", family.name),
                message,
            })
        };
        if !family.name.is_empty() && !names.insert(family.name) {
            problems.push(at("metric family given twice".into()));
        }
        let mut metric = wire::Metric::default();
        for bytes in &family.metric {
            // A metric that does not decode is reported below.
            if metric.decode_into(bytes).is_err() {
                continue;
            }
            let h = &metric.histogram;
            if proto::is_native(h) && !SCHEMAS.contains(&h.schema) {
                problems.push(at(format!(
                    "native histogram schema {} is not one Prometheus stores (-4 to 8; 9 to 52 are reduced to 8)",
                    h.schema
                )));
            }
        }
        if let Err(e) = proto::for_each_sample(&family, frame, options, &mut scratch, |_| {
            Ok::<_, ProtoError>(())
        }) {
            problems.push(located(e));
        }
    }
    problems
}

fn located(e: ProtoError) -> ParseError {
    ParseError {
        line: e.number,
        col: e.offset + 1,
        message: e.to_string(),
    }
}
