//! Every target's family blocks merged into one exposition that is valid
//! in text 0.0.4 and in OpenMetrics, and that a Prometheus scraping it
//! stores exactly as it would store the targets scraped one by one.
//!
//! Targets need not agree: one exposes `go_gc_duration_seconds` as a
//! summary, another the same samples without TYPE lines; one a gauge `x`,
//! another a counter `x_total` (one OpenMetrics family name, `x`). So a
//! family is keyed by its OpenMetrics name, and the names its type
//! reserves (`_sum`, `_count`, `_bucket`, ...) are its own: an untyped block
//! with such a name joins it, a typed family whose names overlap another's
//! makes both untyped. A typed family whose samples its type forbids in
//! OpenMetrics (see [`conform`](crate::exposition::conform)) is served
//! untyped too. Untyped, every sample name is a family of its own: its
//! series and values are what they were, only the TYPE metadata is lost.
//! A typed family's `_created` blocks (kept apart by the text sink) go with
//! it: after it as a gauge `x_created` family with its HELP in text 0.0.4,
//! back among its lines in OpenMetrics ([`FamilyBlock::created`]).
//!
//! This runs once per published scrape, over blocks and line slices: no
//! line is parsed again (the text sink judged each block's samples as it
//! wrote them).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use super::exemplars::{Exemplars, LineExemplar};
use super::sink::{FamilyBlock, Rendered};
use super::text::{self, Text};
use crate::exposition::conform::{self, Created, Judged, Piece};
use crate::exposition::parse::unescape_label_value;
use crate::exposition::{render, Format, MetricType};

/// A family's OpenMetrics name: a counter's without `_total`.
fn openmetrics_name(block: &FamilyBlock) -> &str {
    conform::family_name(block.kind, &block.name)
}

/// A typed family as the targets give it.
struct Typed<'r> {
    key: &'r str,
    first: &'r FamilyBlock,
    /// (target, block), typed blocks first, then untyped ones that joined.
    parts: Vec<(usize, usize)>,
    /// The blocks of its `_created` samples (each after its family block).
    created: Vec<(usize, usize)>,
    untyped: bool,
    /// Where it went in the output, once placed.
    placed: bool,
}

/// A family of the output: its header and its pieces of sample lines
/// (with whether they carry timestamps).
struct Out<'r> {
    name: Cow<'r, str>,
    help: Option<&'r str>,
    kind: MetricType,
    unit: Option<&'r str>,
    pieces: Vec<(&'r [u8], bool)>,
    /// Each piece's exemplars: the table they are in, and where the
    /// piece's lines start in the buffer their `line`s count in.
    exemplars: Vec<(&'r Exemplars, &'r [LineExemplar], usize)>,
    /// Its `_created` samples' pieces, each with where in its family piece
    /// (an index in `pieces`) OpenMetrics has its lines.
    created: Vec<(&'r [u8], usize, &'r [usize])>,
    /// Whether they are all for OpenMetrics only (protobuf created
    /// timestamps; a text target's own `_created` lines are served in both).
    created_openmetrics_only: bool,
}

/// A merged body: text 0.0.4 lines (the targets' own, shared), where each
/// family's are, and the exemplars of its lines (served in OpenMetrics).
#[derive(Debug, Default)]
pub struct Merged {
    pub text: Text,
    pub families: Vec<FamilyBlock>,
    pub exemplars: Exemplars,
}

/// The merged text body of `all` (targets in order, relay's own last) and
/// where each family's lines are in it. Exemplars stay with their lines in
/// typed families; an untyped family (OpenMetrics `unknown`) has none.
pub fn merge<'r>(all: &'r [Arc<Rendered>]) -> Merged {
    let block = |(t, b): (usize, usize)| -> &'r FamilyBlock { &all[t].families[b] };
    let lines = |(t, b): (usize, usize)| -> &'r [u8] {
        let r: &'r Rendered = &all[t];
        r.lines(&r.families[b])
    };
    // Typed families by OpenMetrics name; blocks of another type or text
    // header than the first make the family untyped.
    let mut typed: Vec<Typed<'r>> = Vec::new();
    let mut by_key: HashMap<&'r str, usize> = HashMap::new();
    let all_blocks = all
        .iter()
        .enumerate()
        .flat_map(|(t, r)| (0..r.families.len()).map(move |b| (t, b)));
    for at in all_blocks.clone() {
        let b = block(at);
        if b.kind == MetricType::Unknown || b.created.is_some() {
            continue;
        }
        let key = openmetrics_name(b);
        match by_key.get(key) {
            Some(&i) => {
                let f = &mut typed[i];
                f.untyped |= f.first.kind != b.kind || f.first.name != b.name;
                f.parts.push(at);
            }
            None => {
                by_key.insert(key, typed.len());
                typed.push(Typed {
                    key,
                    first: b,
                    parts: vec![at],
                    created: Vec::new(),
                    untyped: false,
                    placed: false,
                });
            }
        }
    }
    // The sample names each typed family reserves (for each type its
    // blocks have), and its blocks' names; two that share one cannot both
    // keep their type.
    let mut owner: HashMap<String, usize> = HashMap::new();
    let mut clashes = Vec::new();
    for (i, f) in typed.iter().enumerate() {
        let names = f.parts.iter().flat_map(|&p| {
            let b = block(p);
            b.kind
                .suffixes()
                .iter()
                .map(|s| format!("{}{s}", f.key))
                .chain([b.name.clone()])
        });
        for name in names {
            match owner.get(&name) {
                Some(&j) if j != i => clashes.push((i, j)),
                Some(_) => {}
                None => {
                    owner.insert(name, i);
                }
            }
        }
    }
    for (i, j) in clashes {
        typed[i].untyped = true;
        typed[j].untyped = true;
    }
    // `_created` blocks go with the family of the block before them.
    let created_of = |(t, b): (usize, usize)| -> Option<usize> {
        block((t, b)).created.as_ref()?;
        by_key
            .get(openmetrics_name(block((t, b.checked_sub(1)?))))
            .copied()
    };
    for at in all_blocks.clone() {
        if let Some(i) = created_of(at) {
            typed[i].created.push(at);
        }
    }
    // Untyped blocks named like a typed family's samples join it.
    for at in all_blocks.clone() {
        let b = block(at);
        if b.kind == MetricType::Unknown {
            if let Some(&i) = owner.get(b.name.as_str()) {
                typed[i].parts.push(at);
            }
        }
    }
    // The output, in order of first appearance.
    let mut out: Vec<Out<'r>> = Vec::new();
    let mut untyped_out: HashMap<Cow<'r, str>, usize> = HashMap::new();
    let mut untyped_piece = |out: &mut Vec<Out<'r>>,
                             name: Cow<'r, str>,
                             help: Option<&'r str>,
                             piece: (&'r [u8], bool)| {
        let i = *untyped_out.entry(name.clone()).or_insert_with(|| {
            out.push(Out {
                name,
                help,
                kind: MetricType::Unknown,
                unit: None,
                pieces: Vec::new(),
                exemplars: Vec::new(),
                created: Vec::new(),
                created_openmetrics_only: false,
            });
            out.len() - 1
        });
        if out[i].help.is_none() {
            out[i].help = help;
        }
        out[i].pieces.push(piece);
    };
    for at in all_blocks {
        let b = block(at);
        let family = match b.kind {
            _ if b.created.is_some() => created_of(at),
            MetricType::Unknown => owner.get(b.name.as_str()).copied(),
            _ => by_key.get(openmetrics_name(b)).copied(),
        };
        let Some(i) = family else {
            untyped_piece(
                &mut out,
                Cow::Borrowed(&b.name),
                b.help.as_deref(),
                (lines(at), b.timestamps),
            );
            continue;
        };
        let f = &mut typed[i];
        if std::mem::replace(&mut f.placed, true) {
            continue;
        }
        // One target's lines together, targets in order.
        f.parts.sort_unstable();
        if !f.untyped {
            let pieces: Vec<Piece<'_>> = f
                .parts
                .iter()
                .map(|&p| Piece {
                    name: &block(p).name,
                    typed: block(p).kind != MetricType::Unknown,
                    judged: &block(p).judged,
                    lines: lines(p),
                })
                .collect();
            // Each `_created` block fits, and has its family block's place
            // in OpenMetrics.
            let created = f.created.iter().all(|&(t, b)| {
                let c = block((t, b));
                c.judged.fits_created()
                    && !c.timestamps
                    && c.created.as_ref().is_some_and(Created::paired)
                    && f.parts.contains(&(t, b - 1))
            });
            f.untyped = !(created && conform::family(f.first.kind, f.key, &f.first.name, &pieces));
        }
        if f.untyped {
            // Each sample name a family of its own.
            for &p in f.parts.iter().chain(&f.created) {
                let source = block(p);
                for line in lines(p).split_inclusive(|&c| c == b'\n') {
                    let name = sample_name(line);
                    let help = (name == source.name)
                        .then_some(source.help.as_deref())
                        .flatten();
                    untyped_piece(&mut out, name, help, (line, source.timestamps));
                }
            }
            continue;
        }
        let help = f.parts.iter().find_map(|&p| block(p).help.as_deref());
        let unit = f.first.unit.as_deref().filter(|u| {
            f.key.len() > u.len() + 1
                && f.key.ends_with(u)
                && f.key.as_bytes()[f.key.len() - u.len() - 1] == b'_'
                && !matches!(f.first.kind, MetricType::Info | MetricType::StateSet)
        });
        out.push(Out {
            name: Cow::Borrowed(&f.first.name),
            help,
            kind: f.first.kind,
            unit,
            pieces: f
                .parts
                .iter()
                .map(|&p| (lines(p), block(p).timestamps))
                .collect(),
            exemplars: f
                .parts
                .iter()
                .map(|&(t, b)| {
                    let r: &'r Rendered = &all[t];
                    let lines = r.families[b].lines.clone();
                    (&r.exemplars, r.exemplars.within(lines.clone()), lines.start)
                })
                .collect(),
            created: f
                .created
                .iter()
                .filter_map(|&(t, b)| {
                    let piece = f.parts.iter().position(|&p| p == (t, b - 1))?;
                    let at = &block((t, b)).created.as_ref()?.at;
                    Some((lines((t, b)), piece, at.as_slice()))
                })
                .collect(),
            created_openmetrics_only: f.created.iter().all(|&p| block(p).openmetrics_only),
        });
    }
    write(&out, all.iter().flat_map(text::owners_of).collect())
}

/// The metric name a rendered sample line starts with (or quotes first
/// inside its braces: `{"a.b",x="1"} 1`), unescaped.
fn sample_name(line: &[u8]) -> Cow<'_, str> {
    if let Some(quoted) = line.strip_prefix(b"{\"") {
        let end = render::quoted_len(quoted).unwrap_or(0);
        let raw = std::str::from_utf8(&quoted[..end]).unwrap_or_default();
        return unescape_label_value(raw);
    }
    let end = line
        .iter()
        .position(|&c| c == b'{' || c == b' ')
        .unwrap_or(line.len());
    Cow::Borrowed(std::str::from_utf8(&line[..end]).unwrap_or_default())
}

/// The output families' headers, and their lines shared from `owners`
/// (the targets' buffers).
fn write(out: &[Out<'_>], owners: Vec<bytes::Bytes>) -> Merged {
    let mut text = text::Builder::new(owners);
    let mut layout = Vec::with_capacity(out.len());
    let mut exemplars = Exemplars::default();
    for f in out {
        let mut block = FamilyBlock {
            name: f.name.to_string(),
            help: f.help.map(str::to_owned),
            kind: f.kind,
            unit: f.unit.map(str::to_owned),
            lines: 0..0,
            timestamps: false,
            judged: Judged::default(),
            created: None,
            openmetrics_only: false,
        };
        block.write_header(text.own(), Format::Text);
        let start = text.len();
        // Where each piece starts in the family's lines.
        let mut starts = Vec::with_capacity(f.pieces.len());
        for (i, (piece, timestamps)) in f.pieces.iter().enumerate() {
            starts.push(text.len() - start);
            if let Some((from, theirs, base)) = f.exemplars.get(i) {
                for e in *theirs {
                    exemplars.push_moved(from, e, text.len() + (e.line - base));
                }
            }
            text.share(piece);
            block.timestamps |= timestamps;
        }
        block.lines = start..text.len();
        layout.push(block);
        if f.created.is_empty() {
            continue;
        }
        // Text 0.0.4 has the `_created` samples after the family, as a
        // gauge family of their own with its HELP (as prometheus_client).
        let mut created = FamilyBlock {
            name: format!("{}_created", conform::family_name(f.kind, &f.name)),
            help: f.help.map(str::to_owned),
            kind: MetricType::Gauge,
            unit: None,
            lines: 0..0,
            timestamps: false,
            judged: Judged::default(),
            created: None,
            openmetrics_only: f.created_openmetrics_only,
        };
        created.write_header(text.own(), Format::Text);
        let start = text.len();
        let mut at = Vec::new();
        for (piece, family_piece, offsets) in &f.created {
            let base = starts.get(*family_piece).copied().unwrap_or_default();
            at.extend(offsets.iter().map(|o| base + o));
            text.share(piece);
        }
        created.lines = start..text.len();
        created.created = Some(Created::placed(at));
        layout.push(created);
    }
    Merged {
        text: text.finish(),
        families: layout,
        exemplars,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::{check, Labels};
    use crate::relabel::Rules;
    use crate::scrape::pipeline::{process, SeriesCache, Settings};
    use crate::snapshot::Snapshot;

    fn target(instance: &str, body: &str) -> Rendered {
        target_in(instance, body, Format::Text)
    }

    fn target_in(instance: &str, body: &str, format: Format) -> Rendered {
        let labels: Labels<'static> = [("instance", instance.to_owned()), ("job", "j".to_owned())]
            .into_iter()
            .collect::<Labels>()
            .into_owned();
        let rules = Rules::default();
        let mut out = Rendered::default();
        process(
            body.as_bytes(),
            format,
            &Settings::new(&labels, &rules),
            &mut SeriesCache::default(),
            &mut out,
        )
        .expect("valid");
        out
    }

    fn samples(text: &[u8]) -> Vec<String> {
        let mut lines: Vec<String> = String::from_utf8_lossy(text)
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    }

    /// Merges the targets' bodies; asserts the result is valid in both
    /// formats and holds exactly their samples; returns the text body.
    fn merged(bodies: &[&str]) -> String {
        let targets: Vec<Rendered> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| target(&format!("t{i}:1"), b))
            .collect();
        let all: Vec<Arc<Rendered>> = targets.iter().cloned().map(Arc::new).collect();
        let Merged {
            text,
            families: layout,
            ..
        } = merge(&all);
        let want: Vec<String> = targets
            .iter()
            .flat_map(|t| samples(&t.text).into_iter().chain(samples(&t.created)))
            .collect();
        let mut want = want;
        want.sort();
        assert_eq!(samples(&text.joined()), want, "samples must not change");
        let snapshot = Snapshot::new(Merged {
            text: text.clone(),
            families: layout,
            exemplars: Exemplars::default(),
        });
        for format in [Format::Text, Format::OpenMetrics] {
            let body = snapshot.body(format, false);
            assert_eq!(
                check(&body, format),
                vec![],
                "{format:?}:\n{}",
                String::from_utf8_lossy(&body)
            );
        }
        String::from_utf8_lossy(&text.joined()).into_owned()
    }

    #[test]
    fn an_untyped_target_joins_the_typed_family_of_the_others() {
        let typed = "# HELP s S.\n# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n";
        let untyped = "s{quantile=\"0.5\"} 4\ns_sum 5\ns_count 6\n";
        let text = merged(&[typed, untyped, typed]);
        assert_eq!(text.matches("# TYPE").count(), 1, "{text}");
        assert!(
            text.starts_with("# HELP s S.\n# TYPE s summary\n"),
            "{text}"
        );
    }

    #[test]
    fn families_that_clash_are_served_untyped() {
        // One OpenMetrics name for a gauge and a counter; a counter against
        // a gauge of the same name; a gauge named like a histogram's samples.
        let a = "# TYPE a gauge\na 1\n# TYPE a_total counter\na_total 2\n# TYPE b gauge\nb 1\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n";
        let b = "# TYPE b counter\nb 3\n# TYPE h_sum gauge\nh_sum 7\n# TYPE ok gauge\nok 1\n";
        let text = merged(&[a, b]);
        for untyped in ["a", "a_total", "b", "h_bucket", "h_sum", "h_count"] {
            assert!(
                text.contains(&format!("# TYPE {untyped} untyped\n")),
                "{untyped}: {text}"
            );
        }
        assert!(text.contains("# TYPE ok gauge\n"), "{text}");
    }

    #[test]
    fn created_samples_are_a_gauge_family_in_text_and_in_place_in_openmetrics() {
        let body = "# HELP c Requests.\n# TYPE c counter\nc_total{p=\"a\"} 3\nc_created{p=\"a\"} 5\nc_total{p=\"b\"} 1\nc_created{p=\"b\"} 6\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 2\nh_created 7\n";
        let targets = [target("t0:1", body), target("t1:1", body)];
        let all: Vec<Arc<Rendered>> = targets.iter().cloned().map(Arc::new).collect();
        let snapshot = Snapshot::new(merge(&all));
        let text = snapshot.body(Format::Text, false);
        let om = snapshot.body(Format::OpenMetrics, false);
        let series = |name: &str, t: usize, labels: &str| {
            format!("{name}{{instance=\"t{t}:1\",job=\"j\"{labels}}}")
        };
        let p = |v: &str| format!(",p=\"{v}\"");
        let mut want_text = String::from("# HELP c_total Requests.\n# TYPE c_total counter\n");
        for t in 0..2 {
            want_text += &format!(
                "{} 3\n{} 1\n",
                series("c_total", t, &p("a")),
                series("c_total", t, &p("b"))
            );
        }
        want_text += "# HELP c_created Requests.\n# TYPE c_created gauge\n";
        for t in 0..2 {
            want_text += &format!(
                "{} 5\n{} 6\n",
                series("c_created", t, &p("a")),
                series("c_created", t, &p("b"))
            );
        }
        assert!(
            String::from_utf8_lossy(&text).starts_with(&want_text),
            "{}",
            String::from_utf8_lossy(&text)
        );
        let mut want_om = String::from("# HELP c Requests.\n# TYPE c counter\n");
        for t in 0..2 {
            for (v, total, created) in [("a", 3, 5), ("b", 1, 6)] {
                want_om += &format!(
                    "{} {total}\n{} {created}\n",
                    series("c_total", t, &p(v)),
                    series("c_created", t, &p(v))
                );
            }
        }
        want_om += "# TYPE h histogram\n";
        for t in 0..2 {
            want_om += &format!(
                "{} 1\n{} 1\n{} 2\n{} 7\n",
                series("h_bucket", t, ",le=\"+Inf\""),
                series("h_count", t, ""),
                series("h_sum", t, ""),
                series("h_created", t, "")
            );
        }
        assert!(
            String::from_utf8_lossy(&om).starts_with(&want_om),
            "{}",
            String::from_utf8_lossy(&om)
        );
        for (body, format) in [(&text, Format::Text), (&om, Format::OpenMetrics)] {
            assert_eq!(check(body, format), vec![], "{format:?}");
        }
    }

    #[test]
    fn exemplars_survive_the_merge_in_openmetrics_only() {
        let body = "# TYPE c counter\nc_total{p=\"a\"} 3 # {trace_id=\"x\"} 1 1700000000.5\nc_total{p=\"b\"} 4\n# TYPE h histogram\nh_bucket{le=\"1\"} 1 # {trace_id=\"y\",\"span.id\"=\"1\\\"2\"} 0.5\nh_bucket{le=\"+Inf\"} 2\nh_count 2\nh_sum 3 # {trace_id=\"no\"} 1\n# TYPE g gauge\ng 1 # {trace_id=\"no\"} 1\n# EOF\n";
        let targets = [
            target_in("t0:1", body, Format::OpenMetrics),
            target("t1:1", "# TYPE c counter\nc_total 9\n"),
            target_in("t2:1", body, Format::OpenMetrics),
        ];
        let all: Vec<Arc<Rendered>> = targets.iter().cloned().map(Arc::new).collect();
        let snapshot = Snapshot::new(merge(&all));
        let text = String::from_utf8_lossy(&snapshot.body(Format::Text, false)).into_owned();
        assert!(!text.contains(" # {"), "{text}");
        let om = String::from_utf8_lossy(&snapshot.body(Format::OpenMetrics, false)).into_owned();
        assert_eq!(check(om.as_bytes(), Format::OpenMetrics), vec![], "{om}");
        let with: Vec<&str> = om.lines().filter(|l| l.contains(" # {")).collect();
        let mut want = Vec::new();
        for t in [0, 2] {
            want.push(format!("c_total{{instance=\"t{t}:1\",job=\"j\",p=\"a\"}} 3 # {{trace_id=\"x\"}} 1 1700000000.5"));
        }
        for t in [0, 2] {
            want.push(format!("h_bucket{{instance=\"t{t}:1\",job=\"j\",le=\"1\"}} 1 # {{trace_id=\"y\",\"span.id\"=\"1\\\"2\"}} 0.5"));
        }
        assert_eq!(with, want, "{om}");
    }

    #[test]
    fn an_exemplar_over_128_characters_is_dropped_and_its_sample_kept() {
        let long = "x".repeat(121); // 129 characters with `trace_id`
        let body = format!("# TYPE c counter\nc_total 1 # {{trace_id=\"{long}\"}} 1\n# EOF\n");
        let r = target_in("t0:1", &body, Format::OpenMetrics);
        assert!(r.exemplars.is_empty());
        assert_eq!(samples(&r.text).len(), 1);
        let body = format!("# TYPE c counter\nc_total 1 # {{id=\"{long}\"}} 1\n# EOF\n");
        let r = target_in("t0:1", &body, Format::OpenMetrics);
        assert_eq!(r.exemplars.len(), 1);
    }

    #[test]
    fn created_samples_without_their_series_make_the_family_untyped() {
        // A `_created` with no `_total` before it (the order OpenMetrics
        // would need), one twice for a series, one with other labels.
        for body in [
            "# TYPE c counter\nc_created 5\nc_total 1\n",
            "# TYPE c counter\nc_total 1\nc_created 5\nc_created{p=\"x\"} 5\n",
            "# TYPE s summary\ns_count 1\ns_sum 1\ns_created{p=\"x\"} 5\n",
        ] {
            let text = merged(&[body]);
            assert!(
                !text.contains(" counter\n") && !text.contains(" summary\n"),
                "{text}"
            );
        }
    }

    #[test]
    fn what_openmetrics_forbids_is_served_untyped() {
        let bad = [
            "# TYPE c_total counter\nc_total NaN\n",
            "# TYPE c_total counter\nc_total -1\n",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
            "# TYPE s summary\ns{quantile=\"1.5\"} 1\n",
        ];
        for body in bad {
            let text = merged(&[body, "# TYPE other gauge\nother 1\n"]);
            assert!(
                !text.contains(" counter\n")
                    && !text.contains(" histogram\n")
                    && !text.contains(" summary\n"),
                "{text}"
            );
        }
        let good = "# TYPE c_total counter\nc_total 1\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n";
        let text = merged(&[good, good]);
        assert!(
            text.contains("# TYPE c_total counter\n") && text.contains("# TYPE h histogram\n"),
            "{text}"
        );
    }
}
