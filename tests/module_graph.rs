//! The module map of DESIGN.md, checked: flow runs one way, so no two
//! top-level modules import each other (directly or around a ring), no two
//! files do, and nothing imports `crate::run` (the lifecycle sits on top).
//!
//! Reads `src/**/*.rs` as text (no compiler): every `use crate::…`,
//! `use super::…`, `use self::…` and every `crate::…::`/`super::…::` path in
//! code counts as an import of the file that holds the item. A module path
//! `a::b` is `src/a/b.rs` or `src/a/b/mod.rs`; an item named in a module is
//! in that module's file unless the module re-exports it (`pub use`), then
//! it is where the re-export leads. Comments, strings and `#[cfg(test)]`
//! items are passed over: tests may reach anywhere. `src/main.rs` is the
//! binary (it reaches the library as `relay::`), so it is not read; the
//! commands in `src/cli/` sit beside it, above `run`, and may import it.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Path,
    Punct(char),
}

/// The tokens of `src` with their line numbers: identifiers, `::` and single
/// punctuation; comments, strings, chars and lifetimes dropped.
fn tokens(src: &str) -> Vec<(Tok, usize)> {
    let b = src.as_bytes();
    let (mut i, mut line, mut out) = (0, 1, Vec::new());
    let skip_to = |i: &mut usize, line: &mut usize, end: usize| {
        *line += b[*i..end].iter().filter(|&&c| c == b'\n').count();
        *i = end;
    };
    while i < b.len() {
        let c = b[i];
        let rest = &src[i..];
        if c == b'\n' {
            line += 1;
            i += 1;
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if rest.starts_with("//") {
            let end = rest.find('\n').map_or(b.len(), |n| i + n);
            i = end;
        } else if rest.starts_with("/*") {
            let (mut depth, mut j) = (0usize, i);
            while j < b.len() {
                if src[j..].starts_with("/*") {
                    depth += 1;
                    j += 2;
                } else if src[j..].starts_with("*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            skip_to(&mut i, &mut line, j);
        } else if let Some(hashes) = raw_string(rest) {
            let open = 2 + hashes + usize::from(rest.starts_with("br"));
            let close = format!("\"{}", "#".repeat(hashes));
            let end = src[i + open..]
                .find(&close)
                .map_or(b.len(), |n| i + open + n + close.len());
            skip_to(&mut i, &mut line, end);
        } else if c == b'"' || (c == b'b' && rest[1..].starts_with('"')) {
            let mut j = i + if c == b'b' { 2 } else { 1 };
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            skip_to(&mut i, &mut line, (j + 1).min(b.len()));
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{1F}'), else a lifetime ('a).
            let body = &rest[1..];
            let len = if body.starts_with('\\') {
                body.get(2..)
                    .and_then(|b| b.find('\''))
                    .map_or(1, |n| n + 4)
            } else {
                let ch = body.chars().next().map_or(0, char::len_utf8);
                if body[ch..].starts_with('\'') {
                    ch + 2
                } else {
                    1
                }
            };
            i += len;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let len = rest
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .unwrap_or(rest.len());
            out.push((Tok::Ident(rest[..len].to_owned()), line));
            i += len;
        } else if c.is_ascii_digit() {
            let len = rest
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '.'))
                .unwrap_or(rest.len());
            i += len.max(1);
        } else if rest.starts_with("::") {
            out.push((Tok::Path, line));
            i += 2;
        } else {
            let ch = rest.chars().next().unwrap_or(' ');
            out.push((Tok::Punct(ch), line));
            i += ch.len_utf8();
        }
    }
    out
}

/// The number of `#` of a raw string literal starting here (`r"`, `r#"`, `br#"`).
fn raw_string(s: &str) -> Option<usize> {
    let s = s.strip_prefix('b').unwrap_or(s).strip_prefix('r')?;
    let hashes = s.len() - s.trim_start_matches('#').len();
    s[hashes..].starts_with('"').then_some(hashes)
}

/// One path a file names, as written (`crate`/`super`/`self` first), with its line.
#[derive(Debug, Clone)]
struct Ref {
    module: Vec<String>,
    path: Vec<String>,
    line: usize,
    /// `pub use …`: the name this module re-exports it as.
    reexport: Option<String>,
    /// False for a re-export by a relative path (`pub use child::Item`):
    /// a module's own children are not imports.
    imports: bool,
}

fn ident(t: Option<&(Tok, usize)>) -> Option<&str> {
    match t {
        Some((Tok::Ident(s), _)) => Some(s),
        _ => None,
    }
}

/// The paths a file at module path `module` names outside `#[cfg(test)]` items.
fn refs(src: &str, module: &[String]) -> Vec<Ref> {
    let toks = tokens(src);
    let mut out = Vec::new();
    // Inline modules (`mod process { … }`): (name, brace depth inside it).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let (mut depth, mut i) = (0usize, 0);
    let here = |inline: &[(String, usize)]| {
        let mut m = module.to_vec();
        m.extend(inline.iter().map(|(n, _)| n.clone()));
        m
    };
    while i < toks.len() {
        let (tok, line) = &toks[i];
        match tok {
            Tok::Punct('#') if is_cfg_test(&toks[i..]) => {
                i = skip_item(&toks, i);
                continue;
            }
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                if inline.last().is_some_and(|&(_, d)| d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Tok::Ident(k) if k == "mod" => {
                if let (Some(name), Some((Tok::Punct('{'), _))) =
                    (ident(toks.get(i + 1)), toks.get(i + 2))
                {
                    inline.push((name.to_owned(), depth + 1));
                }
            }
            Tok::Ident(k) if k == "use" => {
                let public = i > 0 && is_pub(&toks[..i]);
                let end = toks[i..]
                    .iter()
                    .position(|(t, _)| *t == Tok::Punct(';'))
                    .map_or(toks.len(), |n| i + n);
                let mut paths = Vec::new();
                use_tree(&toks[i + 1..end], Vec::new(), &mut paths);
                for (path, alias) in paths {
                    let rooted = matches!(
                        path.first().map(String::as_str),
                        Some("crate" | "super" | "self")
                    );
                    if rooted || public {
                        out.push(Ref {
                            module: here(&inline),
                            path,
                            line: *line,
                            reexport: public.then_some(alias).flatten(),
                            imports: rooted,
                        });
                    }
                }
                i = end + 1;
                continue;
            }
            Tok::Ident(k) if matches!(k.as_str(), "crate" | "super" | "self") => {
                let dollar = i > 0 && toks[i - 1].0 == Tok::Punct('$');
                if toks.get(i + 1).is_some_and(|(t, _)| *t == Tok::Path) || dollar {
                    let mut path = vec![k.clone()];
                    let mut j = i + 1;
                    while toks.get(j).is_some_and(|(t, _)| *t == Tok::Path) {
                        match ident(toks.get(j + 1)) {
                            Some(s) => path.push(s.to_owned()),
                            None => break,
                        }
                        j += 2;
                    }
                    out.push(Ref {
                        module: here(&inline),
                        path,
                        line: *line,
                        reexport: None,
                        imports: true,
                    });
                    i = j;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Whether the tokens start with `#[cfg(test)]`.
fn is_cfg_test(t: &[(Tok, usize)]) -> bool {
    let want = [
        Tok::Punct('#'),
        Tok::Punct('['),
        Tok::Ident("cfg".into()),
        Tok::Punct('('),
        Tok::Ident("test".into()),
        Tok::Punct(')'),
        Tok::Punct(']'),
    ];
    t.len() >= want.len() && t.iter().zip(&want).all(|((a, _), b)| a == b)
}

/// The index after the item that the attribute at `i` is on: its `;`, or
/// the `}` closing its first block.
fn skip_item(t: &[(Tok, usize)], i: usize) -> usize {
    let mut depth = 0usize;
    for (j, (tok, _)) in t.iter().enumerate().skip(i + 7) {
        match tok {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return j + 1;
                }
            }
            Tok::Punct(';') if depth == 0 => return j + 1,
            _ => {}
        }
    }
    t.len()
}

/// Whether the `use` after these tokens is `pub` (`pub`, `pub(crate)`, …).
fn is_pub(before: &[(Tok, usize)]) -> bool {
    let mut end = before.len();
    if before.last().is_some_and(|(t, _)| *t == Tok::Punct(')')) {
        match before.iter().rposition(|(t, _)| *t == Tok::Punct('(')) {
            Some(open) => end = open,
            None => return false,
        }
    }
    end > 0 && ident(before.get(end - 1)) == Some("pub")
}

/// Expands a use tree into full paths, each with the name it binds.
fn use_tree(t: &[(Tok, usize)], prefix: Vec<String>, out: &mut Vec<(Vec<String>, Option<String>)>) {
    let mut path = prefix;
    let mut i = 0;
    while i < t.len() {
        match &t[i].0 {
            Tok::Ident(s) if s == "as" => {
                let alias = ident(t.get(i + 1)).map(str::to_owned);
                out.push((path.clone(), alias.filter(|a| a != "_")));
                return;
            }
            Tok::Ident(s) => path.push(s.clone()),
            Tok::Path => {}
            Tok::Punct('*') => return,
            Tok::Punct('{') => {
                // Split the group's body on top-level commas.
                let (mut depth, mut start) = (0usize, i + 1);
                for j in i + 1..t.len() {
                    match t[j].0 {
                        Tok::Punct('{') => depth += 1,
                        Tok::Punct('}') if depth == 0 => {
                            use_tree(&t[start..j], path.clone(), out);
                            return;
                        }
                        Tok::Punct('}') => depth -= 1,
                        Tok::Punct(',') if depth == 0 => {
                            use_tree(&t[start..j], path.clone(), out);
                            start = j + 1;
                        }
                        _ => {}
                    }
                }
                return;
            }
            _ => {}
        }
        i += 1;
    }
    if path.last().is_some_and(|s| s == "self") {
        path.pop();
    }
    let alias = path.last().cloned();
    if !path.is_empty() {
        out.push((path, alias));
    }
}

/// The crate as read: module path → file, re-exports, and every reference.
struct Crate {
    files: BTreeMap<Vec<String>, PathBuf>,
    reexports: HashMap<(Vec<String>, String), Vec<String>>,
    refs: Vec<Ref>,
}

impl Crate {
    fn read(root: &Path) -> Crate {
        let src = root.join("src");
        let mut files = BTreeMap::new();
        let mut stack = vec![src.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("src/ is readable") {
                let path = entry.expect("a directory entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let rel = path.strip_prefix(&src).expect("below src/");
                    let mut module: Vec<String> = rel
                        .with_extension("")
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    if module.last().is_some_and(|l| l == "mod") {
                        module.pop();
                    }
                    match module.as_slice() {
                        [m] if m == "main" => continue,
                        [m] if m == "lib" => module.clear(),
                        _ => {}
                    }
                    let shown = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
                    files.insert(module, shown);
                }
            }
        }
        Crate::from_files(files, |p| {
            std::fs::read_to_string(root.join(p)).expect("a readable source file")
        })
    }

    fn from_files(files: BTreeMap<Vec<String>, PathBuf>, read: impl Fn(&Path) -> String) -> Crate {
        let mut refs = Vec::new();
        for (module, path) in &files {
            refs.extend(self::refs(&read(path), module));
        }
        let mut reexports = HashMap::new();
        for r in &refs {
            if let Some(alias) = &r.reexport {
                if let Some(target) = absolute(&r.module, &r.path) {
                    reexports.insert((r.module.clone(), alias.clone()), target);
                }
            }
        }
        Crate {
            files,
            reexports,
            refs,
        }
    }

    /// The module (a key of `files`) whose file holds the item `path` names.
    fn holder(&self, path: &[String], hops: usize) -> Option<Vec<String>> {
        let mut module: Vec<String> = Vec::new();
        for (n, seg) in path.iter().enumerate() {
            let mut child = module.clone();
            child.push(seg.clone());
            if self.files.contains_key(&child) {
                module = child;
            } else if let Some(target) = self.reexports.get(&(module.clone(), seg.clone())) {
                let mut next = target.clone();
                next.extend(path[n + 1..].iter().cloned());
                return match hops {
                    0 => Some(module),
                    _ => self.holder(&next, hops - 1).or(Some(module)),
                };
            } else {
                break;
            }
        }
        Some(module)
    }

    /// File → file imports, each with where it is written.
    fn edges(&self) -> BTreeMap<(Vec<String>, Vec<String>), (String, usize)> {
        let mut edges = BTreeMap::new();
        for r in self.refs.iter().filter(|r| r.imports) {
            let Some(abs) = absolute(&r.module, &r.path) else {
                continue;
            };
            let Some(to) = self.holder(&abs, 8) else {
                continue;
            };
            let from = self.file_module(&r.module);
            if from != to && !to.is_empty() {
                let written = format!("{}::{}", r.path.join("::"), "");
                edges
                    .entry((from, to))
                    .or_insert((written.trim_end_matches("::").to_owned(), r.line));
            }
        }
        edges
    }

    /// The file's module of a (possibly inline) module path.
    fn file_module(&self, module: &[String]) -> Vec<String> {
        let mut m = module.to_vec();
        while !self.files.contains_key(&m) && !m.is_empty() {
            m.pop();
        }
        m
    }

    fn file(&self, module: &[String]) -> String {
        self.files
            .get(module)
            .map_or_else(|| module.join("/"), |p| p.display().to_string())
    }
}

/// `path` from the crate root, as written in `module`.
fn absolute(module: &[String], path: &[String]) -> Option<Vec<String>> {
    let mut base = module.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        // A relative path (in a `pub use`): from this module.
        _ => {}
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The cycles of a graph: one shortest cycle per strongly connected part,
/// with all the part's nodes.
fn cycles<N: Ord + Clone>(edges: &BTreeSet<(N, N)>) -> Vec<(Vec<N>, Vec<N>)> {
    let mut next: BTreeMap<N, Vec<N>> = BTreeMap::new();
    for (a, b) in edges {
        next.entry(a.clone()).or_default().push(b.clone());
    }
    let reach = |from: &N, to: &N| -> Option<Vec<N>> {
        // BFS from `from` to `to`: the path, both ends included.
        let mut prev: BTreeMap<N, N> = BTreeMap::new();
        let mut queue = VecDeque::from([from.clone()]);
        while let Some(n) = queue.pop_front() {
            for m in next.get(&n).into_iter().flatten() {
                if m == to {
                    let mut path = vec![to.clone(), n.clone()];
                    let mut at = n.clone();
                    while let Some(p) = prev.get(&at) {
                        path.push(p.clone());
                        at = p.clone();
                    }
                    path.reverse();
                    return Some(path);
                }
                if !prev.contains_key(m) && m != from {
                    prev.insert(m.clone(), n.clone());
                    queue.push_back(m.clone());
                }
            }
        }
        None
    };
    let mut seen: BTreeSet<N> = BTreeSet::new();
    let mut out = Vec::new();
    for n in next.keys() {
        if seen.contains(n) {
            continue;
        }
        if let Some(cycle) = reach(n, n) {
            // Everything on a cycle with `n` is one part: report it once.
            let part: Vec<N> = next
                .keys()
                .filter(|m| *m == n || (reach(n, m).is_some() && reach(m, n).is_some()))
                .cloned()
                .collect();
            seen.extend(part.iter().cloned());
            out.push((cycle, part));
        }
    }
    out
}

/// Every violation of the module map, as lines to print.
fn violations(krate: &Crate) -> Vec<String> {
    let edges = krate.edges();
    let mut problems = Vec::new();
    let top = |m: &Vec<String>| m.first().cloned().unwrap_or_default();

    let mut top_edges: BTreeMap<(String, String), (Vec<String>, Vec<String>)> = BTreeMap::new();
    for (from, to) in edges.keys() {
        let (a, b) = (top(from), top(to));
        if a != b && !a.is_empty() {
            top_edges
                .entry((a, b))
                .or_insert((from.clone(), to.clone()));
        }
    }
    let set: BTreeSet<_> = top_edges.keys().cloned().collect();
    for (cycle, part) in cycles(&set) {
        let mut msg = format!(
            "top-level modules import each other: {}",
            cycle.join(" -> ")
        );
        if part.len() + 1 > cycle.len() {
            let _ = write!(msg, " (one knot with {})", part.join(", "));
        }
        for w in cycle.windows(2) {
            let (from, to) = &top_edges[&(w[0].clone(), w[1].clone())];
            let (written, line) = &edges[&(from.clone(), to.clone())];
            let _ = write!(msg, "\n    {}:{line} {written}", krate.file(from));
        }
        problems.push(msg);
    }

    let set: BTreeSet<_> = edges.keys().cloned().collect();
    for (cycle, part) in cycles(&set) {
        let names: Vec<_> = cycle.iter().map(|m| krate.file(m)).collect();
        let mut msg = format!("files import each other: {}", names.join(" -> "));
        if part.len() + 1 > cycle.len() {
            let all: Vec<_> = part.iter().map(|m| krate.file(m)).collect();
            let _ = write!(msg, " (one knot with {})", all.join(", "));
        }
        for w in cycle.windows(2) {
            let (written, line) = &edges[&(w[0].clone(), w[1].clone())];
            let _ = write!(msg, "\n    {}:{line} {written}", krate.file(&w[0]));
        }
        problems.push(msg);
    }

    for ((from, to), (written, line)) in &edges {
        // The commands of `src/cli/` sit with `main.rs`, above `run`.
        if top(to) == "run" && top(from) != "run" && top(from) != "cli" {
            problems.push(format!(
                "{}:{line} imports {written}: nothing imports run",
                krate.file(from)
            ));
        }
    }
    problems
}

#[test]
fn modules_flow_one_way() {
    let krate = Crate::read(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(
        krate.files.len() > 20 && krate.refs.len() > 100,
        "read {} files and {} references: src/ was not read",
        krate.files.len(),
        krate.refs.len()
    );
    let problems = violations(&krate);
    assert!(
        problems.is_empty(),
        "the module map of DESIGN.md is broken ({} problems):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The reader on a made-up crate: a cycle through a re-export and a
/// `super::` path is found, a `#[cfg(test)]` module's import and a path in
/// a comment or string are not, and an import of `run` is reported.
#[test]
fn the_check_sees_what_it_must_and_nothing_else() {
    let sources: HashMap<PathBuf, &str> = HashMap::from([
        (PathBuf::from("a/mod.rs"), "pub mod x;\npub use x::Thing;\n"),
        (
            PathBuf::from("a/x.rs"),
            "use crate::b::f; // crate::c::g\npub struct Thing;\nconst S: &str = \"crate::c::g\";\n\
             #[cfg(test)]\nmod tests { use crate::c::g; fn t() { let _ = '{'; } }\nfn after() {}\n",
        ),
        (PathBuf::from("b.rs"), "pub fn f() { let _ = crate::a::Thing; }\n"),
        (PathBuf::from("c.rs"), "use crate::run::start;\npub fn g() {}\n"),
        (PathBuf::from("d.rs"), "mod inner { use super::super::c::g; }\n"),
        (PathBuf::from("run.rs"), "pub fn start() {}\n"),
    ]);
    let files: BTreeMap<Vec<String>, PathBuf> = sources
        .keys()
        .map(|p| {
            let mut m: Vec<String> = p
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if m.last().is_some_and(|l| l == "mod") {
                m.pop();
            }
            (m, p.clone())
        })
        .collect();
    let krate = Crate::from_files(files, |p| sources[p].to_owned());
    let problems = violations(&krate);
    let text = problems.join("\n");
    assert_eq!(problems.len(), 3, "{text}");
    assert!(
        text.contains("top-level modules import each other: a -> b -> a"),
        "{text}"
    );
    assert!(
        text.contains("files import each other: a/x.rs -> b.rs -> a/x.rs"),
        "{text}"
    );
    assert!(text.contains("c.rs:1 imports crate::run::start"), "{text}");
    let d = krate.edges();
    assert!(
        d.contains_key(&(vec!["d".to_owned()], vec!["c".to_owned()])),
        "super::super:: in an inline module: {d:?}"
    );
}
