//! The container image, for real: `scripts/build-image` builds it (static
//! binary on the host, then the Dockerfile's runtime stage with podman), and
//! the image runs with a config mounted as a directory, as the ConfigMap is
//! in a Pod, on a read-only root, scraping a target by the name `localhost`
//! with podman's own /etc/hosts left out (`--no-hosts`), so the image's
//! /etc/hosts and /etc/nsswitch.conf are what resolve it.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::json::Json;
use common::{free_port, get, Reply, Target, DEADLINE};

const NEEDS: &str =
    "needs podman and runc (Debian packages podman, runc); scripts/test installs them";

/// What every `podman run` here needs on these machines.
const RUN_FLAGS: &[&str] = &[
    "--runtime",
    "runc",
    "--network",
    "host",
    "--ulimit",
    "nofile=20000:20000",
    "--ulimit",
    "nproc=1000:1000",
];

/// Containers of this test are named so; older ones are leftovers.
const NAME_PREFIX: &str = "relay-image-test-";

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|p| Path::new(&p.join(name)).is_file())
    })
}

fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(args)
        .output()
        .expect("run podman")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Removes the container when the test ends, passed or not.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.0]);
    }
}

#[test]
#[ignore = "needs podman and runc (Debian); scripts/test runs it"]
fn the_image_builds_small_and_serves_what_it_scrapes_as_uid_65532() {
    for (binary, package) in [("podman", "podman"), ("runc", "runc")] {
        assert!(
            on_path(binary),
            "{binary} is not installed: {NEEDS} (package {package})"
        );
    }
    // A previous run killed midway may have left its container behind.
    let old = podman(&[
        "ps",
        "-a",
        "--format",
        "{{.Names}}",
        "--filter",
        &format!("name=^{NAME_PREFIX}"),
    ]);
    for name in text(&old.stdout)
        .lines()
        .filter(|n| n.starts_with(NAME_PREFIX))
    {
        let _ = podman(&["rm", "-f", "-t", "0", name]);
    }

    let root = env!("CARGO_MANIFEST_DIR");
    let started = Instant::now();
    let built = Command::new(Path::new(root).join("scripts/build-image"))
        .current_dir(root)
        .output()
        .expect("run scripts/build-image");
    assert!(
        built.status.success(),
        "scripts/build-image failed:\n{}",
        text(&built.stderr)
    );
    let stdout = text(&built.stdout);
    let image = stdout
        .lines()
        .last()
        .expect("build-image printed the image")
        .to_owned();
    eprintln!("built {image} in {:?}", started.elapsed());

    // What Kubernetes relies on: a numeric user for runAsNonRoot, the
    // entrypoint and default args the Pod's args repeat, the port.
    let inspect = podman(&["image", "inspect", "--format", "{{json .Config}}", &image]);
    assert!(inspect.status.success(), "{}", text(&inspect.stderr));
    let config = Json::parse(&text(&inspect.stdout)).expect("image config is JSON");
    assert_eq!(config.get("User"), Some(&Json::Str("65532:65532".into())));
    let strings = |key: &str| match config.get(key) {
        Some(Json::Arr(items)) => items
            .iter()
            .map(|i| match i {
                Json::Str(s) => s.clone(),
                other => panic!("{key}: {other:?}"),
            })
            .collect::<Vec<_>>(),
        other => panic!("{key} is {other:?}"),
    };
    assert_eq!(strings("Entrypoint"), ["relay"]);
    assert_eq!(strings("Cmd"), ["run", "--config", "/etc/relay/relay.yml"]);
    assert!(config
        .get("ExposedPorts")
        .and_then(|p| p.get("9090/tcp"))
        .is_some());
    let size = podman(&["image", "inspect", "--format", "{{.Size}}", &image]);
    let size: u64 = text(&size.stdout).trim().parse().expect("image size");
    eprintln!("image size: {size} bytes");
    assert!(
        size <= 15_000_000,
        "the image grew to {size} bytes (aim: 15 MB)"
    );

    // The config baked in at /etc/relay/relay.yml is the valid default.
    let check = podman(
        &[
            &["run", "--rm"][..],
            RUN_FLAGS,
            &[&image, "check", "config", "/etc/relay/relay.yml"],
        ]
        .concat(),
    );
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert_eq!(text(&check.stdout), "/etc/relay/relay.yml: valid\n");

    // The app, reached from the container (host network) as `localhost`.
    let app = Target::start(Reply::text(
        "# TYPE demo_metric gauge\ndemo_metric{a=\"b\"} 42\n",
    ));
    let port = app.addr.rsplit(':').next().expect("port").to_owned();
    let listen = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().expect("tempdir");
    let config_dir = dir.path().join("relay");
    std::fs::create_dir(&config_dir).expect("config dir");
    std::fs::write(
        config_dir.join("relay.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [\"localhost:{port}\"]\n\
             relay:\n  listen_address: \"{listen}\"\n"
        ),
    )
    .expect("write config");
    // relay runs as 65532: it must be able to read the mounted config.
    use std::os::unix::fs::PermissionsExt;
    for (path, mode) in [
        (dir.path(), 0o755),
        (&config_dir, 0o755),
        (&config_dir.join("relay.yml"), 0o644),
    ] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    let container = Container(format!("{NAME_PREFIX}{}", std::process::id()));
    let mount = format!("{}:/etc/relay:ro", config_dir.display());
    let run = podman(
        &[
            &[
                "run",
                "--detach",
                "--name",
                &container.0,
                "--read-only",
                "--no-hosts",
                "--volume",
                &mount,
            ][..],
            RUN_FLAGS,
            &[&image],
        ]
        .concat(),
    );
    assert!(
        run.status.success(),
        "podman run failed:\n{}",
        text(&run.stderr)
    );
    let logs = || {
        let out = podman(&["logs", &container.0]);
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    };

    let up = format!("up{{instance=\"localhost:{port}\",job=\"app\"}} 1");
    let sample = format!("demo_metric{{a=\"b\",instance=\"localhost:{port}\",job=\"app\"}} 42");
    let start = Instant::now();
    let metrics = loop {
        let body = get(&listen, "/metrics", &[])
            .map(|r| r.text())
            .unwrap_or_default();
        if body.lines().any(|l| l == up) && body.lines().any(|l| l == sample) {
            break body;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no {up} and {sample} within {DEADLINE:?}; /metrics:\n{body}\nrelay's log:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(metrics.contains("relay_build_info"), "{metrics}");
    assert_eq!(get(&listen, "/-/ready", &[]).map(|r| r.status), Some(200));

    // The process the kernel sees runs as 65532, real and effective.
    let pid = podman(&["inspect", "--format", "{{.State.Pid}}", &container.0]);
    let pid = text(&pid.stdout).trim().to_owned();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    for key in ["Uid:", "Gid:"] {
        let ids: Vec<&str> = status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .expect("an id line")
            .split_whitespace()
            .collect();
        assert_eq!(ids, ["65532"; 4], "{key} {ids:?}");
    }

    // SIGTERM (podman stop) reaches relay as PID 1 and it exits 0.
    let stop = podman(&["stop", "-t", "20", &container.0]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    let code = podman(&["inspect", "--format", "{{.State.ExitCode}}", &container.0]);
    assert_eq!(text(&code.stdout).trim(), "0", "relay's log:\n{}", logs());
}
