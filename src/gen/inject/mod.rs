//! `relay inject`: relay added as a native sidecar to the workloads of
//! existing manifests (as `linkerd inject` does), with its ConfigMap,
//! volumes and probes built by `relay gen`'s own builders; `--remove`
//! takes it out again.
//!
//! The user's documents are edited as YAML data (serde_norway's mappings
//! keep key order), so fields relay does not know survive; a document
//! `inject` leaves alone is printed as it was written, comments included.

mod kinds;
mod sidecar;
mod stream;
mod target;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::PathBuf;

use serde_norway::{Mapping, Value};

use super::{pod, relay_config, web, GenError, Options, SidecarArgs};
use kinds::{Class, Workload};
use target::Choice;

pub use sidecar::{CHECKSUM_ANNOTATION, RECORD_ANNOTATION};

/// The annotation on a ConfigMap inject wrote: the workload it belongs to,
/// so a second run replaces it and `--remove` drops it.
pub const CONFIG_MAP_ANNOTATION: &str = "relay/injected-into";

/// `relay inject` flags as typed: strings, so a bad value exits 1 naming the flag.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Manifests to read in order (none or `-`: stdin); the result goes to stdout.
    pub files: Vec<PathBuf>,
    /// Take relay out: each injected workload back as it was before inject.
    #[arg(long)]
    pub remove: bool,
    /// The app container relay scrapes: its port named `metrics`, the one the prometheus.io/port annotation names, or its only port.
    #[arg(long)]
    pub container: Option<String>,
    /// The app's metrics port, scraped on localhost [default: from --container, the prometheus.io/port annotation, or the container port named `metrics`].
    #[arg(long)]
    pub metrics_port: Option<String>,
    /// The app's metrics path [default: the prometheus.io/path annotation, else /metrics].
    #[arg(long)]
    pub metrics_path: Option<String>,
    #[command(flatten)]
    pub sidecar: SidecarArgs,
}

/// Why `relay inject` refused: names the flag, or the file, document and field.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error(transparent)]
    Flag(GenError),
    #[error("cannot read {shown}: {source}")]
    Read {
        shown: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{place}: {message}")]
    Document { place: String, message: String },
    #[error("{place}: {source}")]
    Gen {
        place: String,
        #[source]
        source: GenError,
    },
    #[error("cannot write the output")]
    Stdout(#[from] std::io::Error),
}

/// The validated flags: gen's options for relay's parts (None with
/// --remove) and the choice of the app's metrics endpoint.
struct Settings {
    options: Option<Options>,
    choice: Choice,
}

fn settings(args: &Args) -> Result<Settings, InjectError> {
    let gen_flag =
        |flag: &'static str, message: String| InjectError::Flag(GenError::Flag { flag, message });
    let port = match &args.metrics_port {
        Some(p) => Some(super::port("--metrics-port", p).map_err(InjectError::Flag)?),
        None => None,
    };
    if let Some(path) = args.metrics_path.as_deref().filter(|p| !p.starts_with('/')) {
        return Err(gen_flag(
            "--metrics-path",
            format!("{path:?} is not a path (it starts with /)"),
        ));
    }
    let options = if args.remove {
        None
    } else {
        let gen = super::Args::with_sidecar(args.sidecar.clone()).map_err(InjectError::Flag)?;
        Some(gen.validate().map_err(InjectError::Flag)?)
    };
    Ok(Settings {
        choice: Choice {
            container: args.container.clone(),
            port,
            path: args.metrics_path.clone(),
            config: args.sidecar.config.is_some(),
        },
        options,
    })
}

/// One parsed document and where it came from.
struct Parsed<'a> {
    shown: &'a str,
    number: usize,
    doc: stream::Doc<'a>,
    value: Value,
}

impl Parsed<'_> {
    fn place(&self, item: Option<usize>, what: Option<&Workload>) -> String {
        let mut place = format!(
            "{}: document {} (line {})",
            self.shown, self.number, self.doc.line
        );
        if let Some(i) = item {
            place.push_str(&format!(" items[{i}]"));
        }
        if let Some(w) = what {
            place.push_str(&format!(" {}/{}", w.kind, w.name));
        }
        place
    }
}

/// What becomes of one object.
enum Action {
    /// Printed; `true` when changed.
    Keep(bool),
    /// Left out: a ConfigMap of inject's that this run replaces or removes.
    Drop,
    /// Changed, printed after this ConfigMap.
    After(Value),
}

/// The namespace and name of a relay ConfigMap inject wrote, if `value` is one.
fn injected_config_map(value: &Value) -> Option<(Option<String>, String)> {
    let meta = value.get("metadata")?;
    let ours = value.get("kind")?.as_str() == Some("ConfigMap")
        && meta
            .get("annotations")
            .and_then(|a| a.get(CONFIG_MAP_ANNOTATION))
            .is_some();
    ours.then(|| {
        (
            meta.get("namespace")
                .and_then(Value::as_str)
                .map(str::to_owned),
            meta.get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        )
    })
}

/// Gen's options for one workload: named after it, in its namespace.
fn options_for(base: &Options, w: &Workload) -> Options {
    Options {
        name: w.name.clone(),
        namespace: w.namespace.clone(),
        ..base.clone()
    }
}

/// The relay ConfigMaps this run writes, to drop those of an earlier run.
fn written(settings: &Settings, parsed: &[Parsed]) -> HashSet<(Option<String>, String)> {
    let Some(base) = &settings.options else {
        return HashSet::new();
    };
    let mut objects: Vec<&Value> = Vec::new();
    for p in parsed {
        match kinds::classify(&p.value) {
            Ok(Class::List) => objects.extend(
                p.value
                    .get("items")
                    .and_then(Value::as_sequence)
                    .into_iter()
                    .flatten(),
            ),
            _ => objects.push(&p.value),
        }
    }
    objects
        .into_iter()
        .filter_map(|v| match kinds::classify(v) {
            Ok(Class::Workload(w)) => Some((
                w.namespace.clone(),
                pod::config_map_name(&options_for(base, &w)),
            )),
            _ => None,
        })
        .collect()
}

struct Run<'a> {
    settings: &'a Settings,
    written: HashSet<(Option<String>, String)>,
}

impl Run<'_> {
    /// Injects (or removes) relay in one object of a document.
    fn object(
        &self,
        value: &mut Value,
        parsed: &Parsed,
        item: Option<usize>,
    ) -> Result<Action, InjectError> {
        if let Some(key) = injected_config_map(value) {
            let replaced = self.settings.options.is_none() || self.written.contains(&key);
            return Ok(if replaced {
                Action::Drop
            } else {
                Action::Keep(false)
            });
        }
        let class = kinds::classify(value).map_err(|message| InjectError::Document {
            place: parsed.place(item, None),
            message,
        })?;
        let w = match class {
            Class::Workload(w) => w,
            Class::List if item.is_none() => return self.list(value, parsed),
            Class::List | Class::Other => return Ok(Action::Keep(false)),
        };
        let place = parsed.place(item, Some(&w));
        let document = |message: String| InjectError::Document {
            place: place.clone(),
            message,
        };
        let prefix = w.prefix();
        let tpl = kinds::at_mut(value, w.template)
            .ok_or_else(|| document(format!("{prefix}: missing: the kind's Pod template")))?;
        let tpl_map = tpl
            .as_mapping_mut()
            .ok_or_else(|| document(format!("{prefix}: not a mapping")))?;
        let removed = sidecar::remove(tpl_map, &prefix).map_err(document)?;
        let Some(base) = &self.settings.options else {
            return Ok(Action::Keep(removed));
        };
        let target = target::find(tpl, &prefix, &self.settings.choice).map_err(document)?;
        let options = Options {
            metrics_port: Some(target.port),
            metrics_path: target.path.clone(),
            ..options_for(base, &w)
        };
        let gen = |source: GenError| InjectError::Gen {
            place: format!("{place} ({}: {})", target.from, target.port),
            source,
        };
        let relay = relay_config::build(&options).map_err(gen)?;
        let web = web::build(&options).map_err(gen)?;
        target::check_listen(tpl, &prefix, relay.listen_port, &target).map_err(document)?;
        let config_map = pod::config_map(&options, &relay, web.as_ref()).map_err(gen)?;
        let (container, volumes) = pod::relay_sidecar(&options, &relay, web.as_ref());
        let parts = sidecar::Parts {
            container: to_value("relay's container", &container).map_err(gen)?,
            volumes: volumes
                .iter()
                .map(|v| to_value("relay's volume", v))
                .collect::<Result<_, _>>()
                .map_err(gen)?,
            checksum: pod::config_checksum(&relay, web.as_ref(), None),
            scrape_annotations: pod::scrape_annotations(&options, &relay),
            listen_port: relay.listen_port,
            tls: web.as_ref().is_some_and(|w| w.tls),
            relay_grace: pod::grace_seconds(0, &relay),
        };
        let tpl_map = tpl
            .as_mapping_mut()
            .ok_or_else(|| document(format!("{prefix}: not a mapping")))?;
        sidecar::check_names(tpl_map, &prefix, &parts).map_err(document)?;
        sidecar::apply(tpl_map, &prefix, &parts).map_err(document)?;
        let mut config_map: Value = serde_norway::from_str(&config_map.yaml).map_err(|e| {
            gen(GenError::Serialize {
                what: "the relay ConfigMap".to_owned(),
                message: e.to_string(),
            })
        })?;
        if let Some(meta) = config_map
            .get_mut("metadata")
            .and_then(Value::as_mapping_mut)
        {
            let mut annotations = Mapping::new();
            annotations.insert(
                Value::from(CONFIG_MAP_ANNOTATION),
                Value::from(format!("{}/{}", w.kind, w.name)),
            );
            meta.insert(Value::from("annotations"), Value::Mapping(annotations));
        }
        Ok(Action::After(config_map))
    }

    /// A `kind: List`: each item as a document of its own.
    fn list(&self, value: &mut Value, parsed: &Parsed) -> Result<Action, InjectError> {
        let Some(items) = value.get_mut("items").and_then(Value::as_sequence_mut) else {
            return Ok(Action::Keep(false));
        };
        let mut changed = false;
        let mut out = Vec::with_capacity(items.len());
        for (i, mut item) in std::mem::take(items).into_iter().enumerate() {
            match self.object(&mut item, parsed, Some(i))? {
                Action::Keep(c) => changed |= c,
                Action::Drop => {
                    changed = true;
                    continue;
                }
                Action::After(config_map) => {
                    changed = true;
                    out.push(config_map);
                }
            }
            out.push(item);
        }
        *items = out;
        Ok(Action::Keep(changed))
    }
}

/// One of gen's typed objects as YAML data, to put into the user's document.
fn to_value<T: serde::Serialize>(what: &str, value: &T) -> Result<Value, GenError> {
    serde_norway::to_value(value).map_err(|e| GenError::Serialize {
        what: what.to_owned(),
        message: e.to_string(),
    })
}

fn read(args: &Args) -> Result<Vec<(String, String)>, InjectError> {
    let stdin = [PathBuf::from("-")];
    let files = if args.files.is_empty() {
        &stdin[..]
    } else {
        &args.files[..]
    };
    files
        .iter()
        .map(|f| {
            let (shown, bytes) = if f.as_os_str() == "-" {
                let mut buf = Vec::new();
                let read = std::io::stdin().read_to_end(&mut buf).map(|_| buf);
                ("<stdin>".to_owned(), read)
            } else {
                (f.display().to_string(), std::fs::read(f))
            };
            let text = bytes.and_then(|b| {
                String::from_utf8(b)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            });
            match text {
                Ok(t) => Ok((shown, t)),
                Err(source) => Err(InjectError::Read { shown, source }),
            }
        })
        .collect()
}

fn parse<'a>(shown: &'a str, text: &'a str) -> Result<Vec<Parsed<'a>>, InjectError> {
    stream::split(text)
        .into_iter()
        .enumerate()
        .map(|(i, doc)| {
            // Blank lines in front, so the parser's positions are the file's.
            let text = "\n".repeat(doc.line - 1) + doc.text;
            let value =
                serde_norway::from_str::<Value>(&text).map_err(|e| InjectError::Document {
                    place: format!("{shown}: document {} (line {})", i + 1, doc.line),
                    message: format!("not YAML: {e}"),
                })?;
            Ok(Parsed {
                shown,
                number: i + 1,
                doc,
                value,
            })
        })
        .collect()
}

/// `relay inject`: reads the manifests, injects (or removes) relay, and
/// prints every document in order; nothing is printed when one is refused.
pub fn run_cli(args: &Args, stdout: &mut dyn Write) -> Result<(), InjectError> {
    let settings = settings(args)?;
    let inputs = read(args)?;
    let mut parsed = Vec::new();
    for (shown, text) in &inputs {
        parsed.extend(parse(shown, text)?);
    }
    let run = Run {
        written: written(&settings, &parsed),
        settings: &settings,
    };
    let mut out = String::new();
    let yaml = |value: &Value| {
        serde_norway::to_string(value).map_err(|e| {
            InjectError::Flag(GenError::Serialize {
                what: "a document".to_owned(),
                message: e.to_string(),
            })
        })
    };
    for p in &parsed {
        let mut value = p.value.clone();
        let action = run.object(&mut value, p, None)?;
        let text = match action {
            Action::Drop => continue,
            Action::Keep(false) => p.doc.text.to_owned(),
            Action::Keep(true) => yaml(&value)?,
            Action::After(config_map) => {
                out.push_str("---\n");
                out.push_str(&yaml(&config_map)?);
                yaml(&value)?
            }
        };
        out.push_str("---\n");
        out.push_str(&text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    stdout.write_all(out.as_bytes())?;
    stdout.flush()?;
    Ok(())
}
