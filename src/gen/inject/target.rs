//! Which port of the Pod relay scrapes (`--metrics-port`, `--container`,
//! the `prometheus.io/*` annotations, a container port named `metrics`),
//! and the check that relay's own port is free in the Pod's network.

use serde_norway::Value;

/// The annotation that names the app's metrics port to an annotation-discovering Prometheus.
pub(crate) const PORT_ANNOTATION: &str = "prometheus.io/port";
/// The annotation that names the app's metrics path.
pub(crate) const PATH_ANNOTATION: &str = "prometheus.io/path";
/// The annotation that names the app's metrics scheme.
pub(crate) const SCHEME_ANNOTATION: &str = "prometheus.io/scheme";

/// What the flags say about the target, and whether a --config was given.
#[derive(Debug, Clone, Default)]
pub(crate) struct Choice {
    pub container: Option<String>,
    pub port: Option<u16>,
    pub path: Option<String>,
    pub config: bool,
}

/// The app's metrics endpoint in the Pod, and where it was found (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub port: u16,
    pub path: Option<String>,
    pub from: String,
}

/// A string annotation of the template; Err for one that is not a string.
pub(crate) fn annotation<'a>(
    tpl: &'a Value,
    prefix: &str,
    key: &str,
) -> Result<Option<&'a str>, String> {
    let value = tpl
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(key));
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!(
            "{prefix}metadata.annotations.{key}: annotation values are strings: quote it"
        )),
    }
}

fn port_number(value: Option<&Value>) -> Option<u16> {
    value
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
}

/// One declared container port: (list, container index, container name, port index, containerPort, hostPort).
struct Declared<'a> {
    list: &'static str,
    container: usize,
    name: &'a str,
    index: usize,
    port_name: Option<&'a str>,
    container_port: Option<u16>,
    host_port: Option<u16>,
}

impl Declared<'_> {
    fn field(&self, prefix: &str) -> String {
        format!(
            "{prefix}spec.{}[{}].ports[{}] (container {:?})",
            self.list, self.container, self.index, self.name
        )
    }
}

fn declared<'a>(tpl: &'a Value, lists: &[&'static str]) -> Vec<Declared<'a>> {
    let mut out = Vec::new();
    for list in lists {
        let containers = tpl
            .get("spec")
            .and_then(|s| s.get(*list))
            .and_then(Value::as_sequence);
        for (ci, c) in containers.into_iter().flatten().enumerate() {
            let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
            let ports = c.get("ports").and_then(Value::as_sequence);
            for (pi, p) in ports.into_iter().flatten().enumerate() {
                out.push(Declared {
                    list,
                    container: ci,
                    name,
                    index: pi,
                    port_name: p.get("name").and_then(Value::as_str),
                    container_port: port_number(p.get("containerPort")),
                    host_port: port_number(p.get("hostPort")),
                });
            }
        }
    }
    out
}

/// The app's metrics endpoint: `--metrics-port`; else with `--container`
/// that container's port named `metrics`, the annotated port or its only
/// port; else the `prometheus.io/port` annotation; else the one container
/// port named `metrics`. Err says what was looked at and what to add.
pub(crate) fn find(tpl: &Value, prefix: &str, choice: &Choice) -> Result<Target, String> {
    let annotated = match annotation(tpl, prefix, PORT_ANNOTATION)? {
        None => None,
        Some(text) => match text.parse::<u16>() {
            Ok(p) if p > 0 => Some(p),
            _ => {
                return Err(format!(
                    "{prefix}metadata.annotations.{PORT_ANNOTATION}: {text:?} is not a port \
                     (an integer from 1 to 65535)"
                ))
            }
        },
    };
    let scheme = annotation(tpl, prefix, SCHEME_ANNOTATION)?;
    if scheme == Some("https") && !choice.config {
        return Err(format!(
            "{prefix}metadata.annotations.{SCHEME_ANNOTATION}: the app serves its metrics over \
             HTTPS, and the default config scrapes plain HTTP: give --config with a scrape \
             config that has scheme: https and the tls_config the app's certificate needs"
        ));
    }
    let path = match &choice.path {
        Some(p) => Some(p.clone()),
        None => annotation(tpl, prefix, PATH_ANNOTATION)?.map(str::to_owned),
    };
    let target = |port: u16, from: String| Target {
        port,
        path: path.clone(),
        from,
    };
    let ann_from = || format!("{prefix}metadata.annotations.{PORT_ANNOTATION}");
    if let Some(port) = choice.port {
        return Ok(target(port, "--metrics-port".to_owned()));
    }
    let ports = declared(tpl, &["containers"]);
    if let Some(name) = &choice.container {
        let mine: Vec<&Declared> = ports.iter().filter(|d| d.name == name).collect();
        let exists = tpl
            .get("spec")
            .and_then(|s| s.get("containers"))
            .and_then(Value::as_sequence)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.get("name").and_then(Value::as_str) == Some(name))
            });
        if !exists {
            return Err(format!(
                "{prefix}spec.containers: no container is named {name:?} (--container)"
            ));
        }
        if let Some(d) = mine.iter().find(|d| d.port_name == Some("metrics")) {
            if let Some(p) = d.container_port {
                return Ok(target(p, format!("{} named metrics", d.field(prefix))));
            }
        }
        if let Some(p) = annotated.filter(|a| mine.iter().any(|d| d.container_port == Some(*a))) {
            return Ok(target(p, ann_from()));
        }
        if let [d] = mine.as_slice() {
            if let Some(p) = d.container_port {
                return Ok(target(p, d.field(prefix)));
            }
        }
        return Err(format!(
            "no metrics port found in container {name:?} (--container): it has no port named \
             `metrics`, none that {prefix}metadata.annotations.{PORT_ANNOTATION} names, and \
             not exactly one port: name the port `metrics` or give --metrics-port"
        ));
    }
    if let Some(p) = annotated {
        return Ok(target(p, ann_from()));
    }
    let named: Vec<&Declared> = ports
        .iter()
        .filter(|d| d.port_name == Some("metrics") && d.container_port.is_some())
        .collect();
    match named.as_slice() {
        [d] => Ok(target(
            d.container_port.unwrap_or_default(),
            format!("{} named metrics", d.field(prefix)),
        )),
        [] => Err(format!(
            "no metrics port found: {prefix}metadata.annotations has no {PORT_ANNOTATION} and no \
             container in {prefix}spec.containers has a port named `metrics`: add one of the \
             two, or give --container or --metrics-port"
        )),
        several => Err(format!(
            "several ports are named `metrics` ({}): choose one with --container",
            several
                .iter()
                .map(|d| d.field(prefix))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Refuses a relay listen port that the app's metrics port or another
/// container already takes (with `hostNetwork`, the node's ports too).
pub(crate) fn check_listen(
    tpl: &Value,
    prefix: &str,
    listen: u16,
    target: &Target,
) -> Result<(), String> {
    if listen == target.port {
        return Err(format!(
            "relay's listen port {listen} is the app's metrics port ({}): choose another with \
             --listen-port",
            target.from
        ));
    }
    let host_network = tpl
        .get("spec")
        .and_then(|s| s.get("hostNetwork"))
        .and_then(Value::as_bool)
        == Some(true);
    for d in declared(tpl, &["initContainers", "containers"]) {
        let host_clash = host_network && d.host_port == Some(listen);
        if d.container_port != Some(listen) && !host_clash {
            continue;
        }
        return Err(if host_network {
            format!(
                "{prefix}spec.hostNetwork is true, so relay's listen port {listen} is a port of \
                 the node, and {} already takes it: choose another with --listen-port",
                d.field(prefix)
            )
        } else {
            format!(
                "{} takes port {listen}, relay's listen port (the containers share the Pod's \
                 network): choose another with --listen-port",
                d.field(prefix)
            )
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tpl(yaml: &str) -> Value {
        serde_norway::from_str(yaml).expect("yaml")
    }

    const TWO: &str = "metadata: {annotations: {prometheus.io/port: '9100'}}\n\
        spec:\n  containers:\n  - name: app\n    ports: [{name: http, containerPort: 8080}, {name: metrics, containerPort: 8081}]\n\
        \x20 - name: exporter\n    ports: [{containerPort: 9100}]\n";

    #[test]
    fn the_order_of_sources() {
        let t = tpl(TWO);
        let none = Choice::default();
        assert_eq!(find(&t, "", &none).expect("annotation").port, 9100);
        let app = Choice {
            container: Some("app".into()),
            ..Choice::default()
        };
        let got = find(&t, "", &app).expect("named");
        assert_eq!(got.port, 8081);
        assert!(got.from.contains("containers[0].ports[1]"), "{}", got.from);
        let exporter = Choice {
            container: Some("exporter".into()),
            ..Choice::default()
        };
        assert_eq!(find(&t, "", &exporter).expect("annotated").port, 9100);
        let flag = Choice {
            port: Some(7000),
            ..Choice::default()
        };
        assert_eq!(find(&t, "", &flag).expect("flag").port, 7000);
        let missing = Choice {
            container: Some("nope".into()),
            ..Choice::default()
        };
        let err = find(&t, "spec.template.", &missing).expect_err("no such container");
        assert!(err.contains("spec.template.spec.containers"), "{err}");
    }

    #[test]
    fn listen_port_clashes() {
        let t = tpl(TWO);
        let target = find(&t, "", &Choice::default()).expect("target");
        let err = check_listen(&t, "", 8080, &target).expect_err("taken");
        assert!(err.contains("spec.containers[0].ports[0]"), "{err}");
        assert!(check_listen(&t, "", 9090, &target).is_ok());
        let host = tpl("spec:\n  hostNetwork: true\n  containers:\n  - name: a\n    ports: [{containerPort: 1, hostPort: 9090}]\n");
        let err = check_listen(&host, "", 9090, &target).expect_err("node port");
        assert!(err.contains("hostNetwork"), "{err}");
    }
}
