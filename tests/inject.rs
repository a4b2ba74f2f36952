//! `relay inject`: the sample manifests of `examples/inject/` (an existing
//! init container and native sidecar, named volumes, a Pod securityContext,
//! a CronJob, a StatefulSet with volumeClaimTemplates, a `List`) come out
//! valid for Kubernetes 1.30, with relay's parts exactly as `relay gen`
//! builds them and the app's untouched; a second run changes nothing;
//! `--remove` gives the input back; each refusal names its place.

mod common;

use std::path::PathBuf;

use serde::Deserialize;
use serde_norway::Value;

use common::k8s::{kubernetes_validate, validate_strict};

const FIXTURES: [&str; 4] = [
    "deployment.yaml",
    "cronjob.yaml",
    "statefulset.yaml",
    "list.yaml",
];

/// Option sets every fixture is injected with: the defaults, and remote
/// write with a Secret, TLS on relay's port and another listen port.
const OPTIONS: [&[&str]; 2] = [
    &[],
    &[
        "--remote-write-url",
        "https://metrics.example.com/api/v1/push",
        "--remote-write-basic-auth-secret",
        "rw-auth",
        "--remote-write-username",
        "shipper",
        "--web-tls-secret",
        "relay-tls",
        "--listen-port",
        "9095",
    ],
];

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/inject")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn inject(args: &[&str], input: &str) -> common::Ran {
    let mut command = common::relay(&["inject"]);
    command
        .args(args)
        .env_remove("RELAY_WAL_DIR")
        .env_remove("RELAY_LISTEN_ADDRESS");
    common::pipe(command, input.as_bytes())
}

fn inject_ok(args: &[&str], input: &str) -> String {
    let ran = inject(args, input);
    assert_eq!(
        ran.code, 0,
        "relay inject {args:?} failed: {}\ninput:\n{input}",
        ran.stderr
    );
    ran.stdout
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).expect("YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}

/// Every object: a List's items in its place.
fn objects(yaml: &str) -> Vec<Value> {
    docs(yaml)
        .into_iter()
        .flat_map(|d| {
            if d["kind"] == "List" {
                d["items"].as_sequence().cloned().unwrap_or_default()
            } else {
                vec![d]
            }
        })
        .collect()
}

fn kinds(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap_or("?"),
                o["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {:?}", kinds(objects)))
}

fn names(list: &Value) -> Vec<&str> {
    list.as_sequence()
        .expect("a list")
        .iter()
        .map(|c| c["name"].as_str().expect("a name"))
        .collect()
}

fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_sequence()
        .expect("a list")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("nothing named {name}"))
}

/// The relay config embedded in an injected ConfigMap.
fn relay_yml(config_map: &Value) -> Value {
    serde_norway::from_str(config_map["data"]["relay.yml"].as_str().expect("relay.yml"))
        .expect("relay.yml parses")
}

#[test]
#[ignore = "needs kubernetes-validate (PyPI); scripts/test runs it"]
fn injected_fixtures_pass_kubernetes_validate() {
    let bin = kubernetes_validate();
    let dir = tempfile::tempdir().expect("tempdir");
    for name in FIXTURES {
        for (i, args) in OPTIONS.iter().enumerate() {
            let out = inject_ok(&[&["-"], *args].concat(), &fixture(name));
            // kubernetes-validate has no schema for List: its items one by one.
            let objects = objects(&out);
            let text: String = objects
                .iter()
                .map(|o| format!("---\n{}", serde_norway::to_string(o).expect("yaml")))
                .collect();
            let file = dir.path().join(format!("{i}-{name}"));
            std::fs::write(&file, text).expect("write");
            let (ok, report) = validate_strict(&bin, &file);
            assert!(
                ok,
                "relay inject {args:?} {name}: kubernetes-validate failed:\n{report}"
            );
            assert_eq!(
                report.matches(" passed for resource ").count(),
                objects.len(),
                "relay inject {args:?} {name}: every object must pass:\n{report}"
            );
            assert!(
                objects.iter().any(|o| o["kind"] == "ConfigMap"
                    && o["metadata"]["annotations"]["relay/injected-into"].is_string()),
                "{name}: relay's ConfigMap is among what passed"
            );
        }
    }
}

#[test]
fn a_second_inject_changes_nothing() {
    for name in FIXTURES {
        for args in OPTIONS {
            let once = inject_ok(args, &fixture(name));
            let twice = inject_ok(args, &once);
            assert_eq!(once, twice, "relay inject {args:?} {name}, run twice");
        }
    }
}

#[test]
fn remove_gives_back_the_input() {
    for name in FIXTURES {
        let input = fixture(name);
        for args in OPTIONS {
            let injected = inject_ok(args, &input);
            assert_ne!(docs(&injected), docs(&input), "{name}: inject changed it");
            let removed = inject_ok(&["--remove"], &injected);
            assert_eq!(
                docs(&removed),
                docs(&input),
                "relay inject {args:?} {name} | relay inject --remove:\n{removed}"
            );
        }
        // Nothing to take out: the input as it was written, comments too.
        let untouched = inject_ok(&["--remove"], &input);
        assert_eq!(docs(&untouched), docs(&input), "{name}");
        for line in input.lines().filter(|l| l.contains('#')) {
            assert!(
                untouched.contains(line),
                "{name}: {line:?} kept:\n{untouched}"
            );
        }
    }
}

#[test]
fn another_run_with_other_options_updates_only_relays_parts() {
    for name in FIXTURES {
        let input = fixture(name);
        let first = inject_ok(OPTIONS[0], &input);
        let updated = inject_ok(OPTIONS[1], &first);
        assert_eq!(
            updated,
            inject_ok(OPTIONS[1], &input),
            "{name}: injecting the injected output with other options is injecting the input"
        );
        assert_eq!(
            docs(&inject_ok(&["--remove"], &updated)),
            docs(&input),
            "{name}"
        );
    }
}

#[test]
fn relay_is_gens_sidecar_and_the_app_stays_the_users() {
    let input = fixture("deployment.yaml");
    let out = inject_ok(&[], &input);
    let before = objects(&input);
    let after = objects(&out);
    assert_eq!(
        kinds(&after),
        ["Service/web", "ConfigMap/web-relay", "Deployment/web"]
    );
    // A document inject does not change is printed as written.
    assert!(
        out.contains("    targetPort: http   # the app's serving port\n"),
        "{out}"
    );

    let old = &find(&before, "Deployment")["spec"]["template"];
    let new = &find(&after, "Deployment")["spec"]["template"];
    // The app's containers and the Pod's security settings are the user's.
    assert_eq!(new["spec"]["containers"], old["spec"]["containers"]);
    assert_eq!(
        new["spec"]["securityContext"],
        old["spec"]["securityContext"]
    );
    assert_eq!(new["spec"]["serviceAccountName"], "web");
    assert!(new["spec"].get("automountServiceAccountToken").is_none());
    assert_eq!(
        names(&new["spec"]["initContainers"]),
        ["migrate", "proxy", "relay"]
    );
    assert_eq!(
        names(&new["spec"]["volumes"]),
        ["data", "cache", "relay-config", "relay-wal"]
    );
    // The app's own 45 s, then relay's shutdown_timeout 25 s and a 5 s margin.
    assert_eq!(new["spec"]["terminationGracePeriodSeconds"], 75);
    for key in ["migrate", "proxy"] {
        assert_eq!(
            named(&new["spec"]["initContainers"], key),
            named(&old["spec"]["initContainers"], key)
        );
    }

    // The annotations point an annotation-discovering Prometheus at relay,
    // in their places; the others stay.
    let annotations = new["metadata"]["annotations"]
        .as_mapping()
        .expect("annotations");
    let keys: Vec<&str> = annotations.keys().filter_map(Value::as_str).collect();
    assert_eq!(
        keys,
        [
            "prometheus.io/scrape",
            "prometheus.io/port",
            "prometheus.io/path",
            "kubectl.kubernetes.io/default-container",
            "relay/config-checksum",
            "relay/inject",
        ]
    );
    assert_eq!(annotations["prometheus.io/port"], "9090");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    assert_eq!(
        annotations["kubectl.kubernetes.io/default-container"],
        "web"
    );

    // relay scrapes what the annotations named.
    let config_map = find(&after, "ConfigMap");
    assert_eq!(config_map["metadata"]["namespace"], "shop");
    let config = relay_yml(config_map);
    let job = &config["scrape_configs"][0];
    assert_eq!(job["static_configs"][0]["targets"][0], "localhost:8081");
    assert_eq!(job["metrics_path"], "/internal/metrics");

    // relay's container, volumes and config are the ones `relay gen` makes.
    let gen = common::pipe(
        common::relay(&[
            "gen",
            "--name",
            "web",
            "--namespace",
            "shop",
            "--metrics-port",
            "8081",
        ]),
        b"",
    );
    assert_eq!(gen.code, 0, "{}", gen.stderr);
    let gen = objects(&gen.stdout);
    let gen_pod = &find(&gen, "Pod")["spec"];
    let relay = named(&new["spec"]["initContainers"], "relay");
    assert_eq!(relay, named(&gen_pod["initContainers"], "relay"));
    assert_eq!(relay["restartPolicy"], "Always");
    assert_eq!(relay["securityContext"]["runAsUser"], 65532);
    for volume in ["relay-config", "relay-wal"] {
        assert_eq!(
            named(&new["spec"]["volumes"], volume),
            named(&gen_pod["volumes"], volume)
        );
    }
    let gen_config = relay_yml(find(&gen, "ConfigMap"));
    assert_eq!(gen_config["relay"], config["relay"]);
    assert_eq!(gen_config["global"], config["global"]);
}

#[test]
fn the_metrics_port_comes_from_a_port_named_metrics_or_the_flags() {
    // A StatefulSet without annotations: its port named `metrics`, and the
    // annotations `relay gen` writes are added.
    let out = objects(&inject_ok(&[], &fixture("statefulset.yaml")));
    assert_eq!(kinds(&out), ["ConfigMap/queue-relay", "StatefulSet/queue"]);
    let config = relay_yml(&out[0]);
    assert_eq!(
        config["scrape_configs"][0]["static_configs"][0]["targets"][0],
        "localhost:15692"
    );
    let sts = &out[1];
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "state"
    );
    let annotations = &sts["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], "9090");

    // A CronJob's template without metadata gets it, and loses it on --remove.
    let out = objects(&inject_ok(&[], &fixture("cronjob.yaml")));
    assert_eq!(
        relay_yml(&out[0])["scrape_configs"][0]["static_configs"][0]["targets"][0],
        "localhost:9102"
    );
    let template = &out[1]["spec"]["jobTemplate"]["spec"]["template"];
    assert_eq!(names(&template["spec"]["initContainers"]), ["relay"]);
    assert!(template["metadata"]["annotations"]["relay/inject"].is_string());

    // --container and --metrics-port choose over the annotation.
    let input = fixture("deployment.yaml");
    for (args, target) in [
        (&["--metrics-port", "8080"][..], "localhost:8080"),
        (&["--container", "web"][..], "localhost:8081"),
    ] {
        let out = objects(&inject_ok(args, &input));
        let config = relay_yml(find(&out, "ConfigMap"));
        assert_eq!(
            config["scrape_configs"][0]["static_configs"][0]["targets"][0], target,
            "{args:?}"
        );
    }

    // With remote write, --scrape-annotations auto leaves the annotations
    // alone, as `relay gen` leaves them off (no sample ingested twice).
    let out = objects(&inject_ok(OPTIONS[1], &input));
    let annotations = &find(&out, "Deployment")["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/port"], "8081");
    let relay = named(
        &find(&out, "Deployment")["spec"]["template"]["spec"]["initContainers"],
        "relay",
    );
    assert_eq!(relay["ports"][0]["containerPort"], 9095);
    assert_eq!(relay["readinessProbe"]["httpGet"]["scheme"], "HTTPS");
}

/// A Deployment of one container with `ports`, and more `spec` lines.
fn deployment(name: &str, annotations: &str, ports: &str, spec: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n      annotations: {{{annotations}}}\n    spec:\n{spec}      containers:\n      - name: app\n        image: app:1\n        ports: [{ports}]\n"
    )
}

#[test]
fn refusals_name_the_document_and_the_field() {
    let service = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n";
    let cases: Vec<(&str, String, &[&str], Vec<&str>)> = vec![
        (
            "no metrics port",
            format!(
                "{service}---\n{}",
                deployment("plain", "", "{name: http, containerPort: 8080}", "")
            ),
            &[],
            vec![
                "<stdin>: document 2 (line 5) Deployment/plain: no metrics port found",
                "spec.template.metadata.annotations has no prometheus.io/port",
                "a port named `metrics`",
                "--container or --metrics-port",
            ],
        ),
        (
            "listen port taken",
            deployment(
                "busy",
                "",
                "{name: metrics, containerPort: 8001}, {name: admin, containerPort: 9090}",
                "",
            ),
            &[],
            vec![
                "document 1 (line 1) Deployment/busy",
                "spec.template.spec.containers[0].ports[1] (container \"app\") takes port 9090, relay's listen port",
                "--listen-port",
            ],
        ),
        (
            "listen port is the metrics port",
            deployment("same", "", "{name: metrics, containerPort: 9095}", ""),
            &["--listen-port", "9095"],
            vec![
                "Deployment/same",
                "relay's listen port 9095 is the app's metrics port",
                "spec.template.spec.containers[0].ports[0]",
            ],
        ),
        (
            "hostNetwork with a clash",
            deployment(
                "node",
                "prometheus.io/port: '9100'",
                "{containerPort: 9100, hostPort: 9100}",
                "      hostNetwork: true\n      initContainers:\n      - name: agent\n        image: agent:1\n        restartPolicy: Always\n        ports: [{containerPort: 9090, hostPort: 9090}]\n",
            ),
            &[],
            vec![
                "Deployment/node",
                "spec.template.spec.hostNetwork is true, so relay's listen port 9090 is a port of the node",
                "spec.template.spec.initContainers[0].ports[0] (container \"agent\") already takes it",
            ],
        ),
        (
            "a kind it cannot inject",
            format!("{service}---\napiVersion: v1\nkind: ReplicationController\nmetadata: {{name: rc}}\nspec:\n  template: {{}}\n"),
            &[],
            vec![
                "document 2 (line 5)",
                "kind: ReplicationController (v1) holds a Pod template, but relay inject cannot inject this kind",
                "Deployment",
            ],
        ),
        (
            "an apiVersion it does not know",
            "apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: old}\n".to_owned(),
            &[],
            vec!["document 1 (line 1)", "apiVersion: \"extensions/v1beta1\"", "apps/v1"],
        ),
        (
            "a container already named relay",
            deployment(
                "taken",
                "",
                "{name: metrics, containerPort: 8001}",
                "      initContainers:\n      - name: relay\n        image: someone-elses-relay:1\n",
            ),
            &[],
            vec![
                "Deployment/taken",
                "spec.template.spec.initContainers[0].name: a container is already named \"relay\"",
            ],
        ),
        (
            "an annotation that is no port",
            deployment("named", "prometheus.io/port: metrics", "{name: metrics, containerPort: 8001}", ""),
            &[],
            vec![
                "Deployment/named",
                "spec.template.metadata.annotations.prometheus.io/port: \"metrics\" is not a port",
            ],
        ),
        (
            "an unknown --container",
            deployment("one", "", "{name: metrics, containerPort: 8001}", ""),
            &["--container", "sidecar"],
            vec!["spec.template.spec.containers: no container is named \"sidecar\" (--container)"],
        ),
        (
            "a refused List item",
            format!(
                "apiVersion: v1\nkind: List\nitems:\n- {service_item}\n- apiVersion: v1\n  kind: Pod\n  metadata: {{name: p}}\n  spec:\n    containers: [{{name: a, image: a}}]\n",
                service_item = "{apiVersion: v1, kind: Service, metadata: {name: s}}"
            ),
            &[],
            vec!["document 1 (line 1) items[1] Pod/p: no metrics port found", "spec.containers"],
        ),
        (
            "not YAML",
            format!("{service}---\nkind: [Pod\n"),
            &[],
            vec!["<stdin>: document 2 (line 5): not YAML: did not find expected ',' or ']' at line 6 column 1"],
        ),
        (
            "a name too long for the ConfigMap's label",
            deployment(&"a".repeat(64), "", "{name: metrics, containerPort: 8001}", ""),
            &[],
            vec!["document 1 (line 1): metadata.name: \"aaaa", "is longer than 63 characters"],
        ),
        (
            "a bad flag",
            deployment("one", "", "{name: metrics, containerPort: 8001}", ""),
            &["--metrics-path", "metrics"],
            vec!["--metrics-path: \"metrics\" is not a path"],
        ),
    ];
    for (what, input, args, fragments) in cases {
        let ran = inject(args, &input);
        assert_eq!(ran.code, 1, "{what}: exit 1\n{}", ran.stderr);
        assert!(
            ran.stdout.is_empty(),
            "{what}: nothing printed: {}",
            ran.stdout
        );
        assert_eq!(
            ran.stderr.lines().count(),
            1,
            "{what}: one line: {}",
            ran.stderr
        );
        for fragment in fragments {
            assert!(
                ran.stderr.contains(fragment),
                "{what}: {fragment:?} not in:\n{}",
                ran.stderr
            );
        }
    }
}

#[test]
fn files_are_read_in_order_and_named_in_refusals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.yaml");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&good, fixture("cronjob.yaml")).expect("write");
    std::fs::write(
        &bad,
        deployment("plain", "", "{name: http, containerPort: 8080}", ""),
    )
    .expect("write");
    let out = inject_ok(
        &[good.to_str().expect("utf-8"), "-"],
        &fixture("statefulset.yaml"),
    );
    assert_eq!(
        kinds(&objects(&out)),
        [
            "ConfigMap/report-relay",
            "CronJob/report",
            "ConfigMap/queue-relay",
            "StatefulSet/queue"
        ]
    );
    let ran = inject(
        &[good.to_str().expect("utf-8"), bad.to_str().expect("utf-8")],
        "",
    );
    assert_eq!(ran.code, 1);
    assert!(ran.stdout.is_empty(), "{}", ran.stdout);
    assert!(
        ran.stderr.contains(&format!(
            "{}: document 1 (line 1) Deployment/plain",
            bad.display()
        )),
        "{}",
        ran.stderr
    );
}
