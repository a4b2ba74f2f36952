//! The relabel engine with arbitrary rules on arbitrary label sets. The
//! input is one case in the form of `tests/relabel_cases.yaml`
//! (`{input: {...}, rules: [...]}`), so the table seeds it. Rules either
//! fail to compile with the index and field at fault, or apply without
//! panicking, deterministically, leaving no duplicate and no empty label.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use relay::exposition::Labels;
use relay::relabel::{RelabelConfig, Rules};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    #[serde(default)]
    input: BTreeMap<String, String>,
    #[serde(default)]
    rules: Vec<RelabelConfig>,
}

fuzz_target!(|data: &[u8]| {
    relay_fuzz::limit_allocations(64 << 20);
    let Ok(case) = serde_norway::from_slice::<Case>(data) else {
        return;
    };
    let rules = match Rules::compile(&case.rules) {
        Ok(rules) => rules,
        Err(e) => {
            assert!(e.index < case.rules.len(), "{e:?}");
            assert!(!e.message.is_empty(), "{e:?}");
            return;
        }
    };
    // A scraped series: valid names (the parser sees to that), no empty value.
    let input: Labels = case
        .input
        .iter()
        .filter(|(n, v)| (relay_fuzz::is_label_name(n)) && !v.is_empty())
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut once = input.clone();
    let kept = rules.apply(&mut once);
    let mut traced = input.clone();
    let mut steps = 0;
    let kept_traced = rules.apply_traced(&mut traced, |i, _, _| {
        assert_eq!(i, steps, "rules traced out of order");
        steps += 1;
    });
    assert_eq!(kept, kept_traced, "apply and apply_traced disagree");
    if !kept {
        return;
    }
    assert_eq!(steps, case.rules.len(), "a kept series skipped a rule");
    assert_eq!(once, traced, "apply and apply_traced disagree");
    let mut names: Vec<&str> = once.iter().map(|l| l.name.as_ref()).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before, "duplicate label names: {once:?}");
    assert!(
        once.iter().all(|l| !l.value.is_empty()),
        "an empty label survived: {once:?}"
    );
});
