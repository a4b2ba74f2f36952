//! The `relay` command line: reads flags and calls into the library.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use relay::config::{self, Overrides};
use relay::exposition::{self, Format};

const EXAMPLES: &str = "\
Examples:
  relay demo                                  synthetic app on :8001, relay on :9090
  relay run --config config/relay.yml         the sidecar
  relay check config config/relay.yml         validate a config (exit 1 when invalid)
  relay check web-config web.yml              validate a --web.config.file
  curl -s localhost:8001/metrics | relay check metrics
  relay relabel --config relay.yml --explain < metrics.txt";

/// The version and the commit it was built from (build.rs; "unknown"
/// outside a git checkout), so a bug report names the exact code.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("RELAY_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(name = "relay", version = VERSION, about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log line format: logfmt or json [env: RELAY_LOG_FORMAT] [default: logfmt]
    #[arg(long = "log.format", global = true, value_name = "FORMAT")]
    log_format: Option<relay::logging::LogFormat>,
    /// Least severe level logged: debug, info, warn or error [env: RELAY_LOG] [default: info]
    #[arg(long = "log.level", global = true, value_name = "LEVEL")]
    log_level: Option<relay::logging::LogLevel>,
}

#[derive(Subcommand)]
enum Command {
    /// Scrape the config's targets and serve the result on :9090.
    Run {
        /// The config file (a prometheus.yml subset plus a `relay:` section).
        #[arg(long, short)]
        config: PathBuf,
        /// Where to serve /metrics (overrides relay.listen_address).
        #[arg(long, visible_alias = "web.listen-address")]
        listen_address: Option<String>,
        /// TLS and basic auth for :9090: a Prometheus web config file
        /// (tls_server_config, basic_auth_users), read again on every request.
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config_file: Option<PathBuf>,
        /// Serve POST /-/reload (off: SIGHUP and the file watch still reload).
        #[arg(long = "web.enable-lifecycle")]
        web_enable_lifecycle: bool,
        /// Open connections at most; at the cap a new one closes the oldest idle one.
        #[arg(long = "web.max-connections", value_name = "N", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
        web_max_connections: u32,
        /// How long a connection may wait before its request head is in (idle keep-alive included).
        #[arg(long = "web.read-timeout", value_name = "DURATION", default_value = "30s", value_parser = positive_duration)]
        web_read_timeout: std::time::Duration,
        /// How long writing a response may make no progress (a client that does not read).
        #[arg(long = "web.write-timeout", value_name = "DURATION", default_value = "30s", value_parser = positive_duration)]
        web_write_timeout: std::time::Duration,
    },
    /// Validate config files or an exposition, like promtool but with positions.
    #[command(subcommand)]
    Check(Check),
    /// Apply a job's metric_relabel_configs to an exposition on stdin.
    #[command(
        after_help = "Example:\n  relay relabel --config relay.yml --job app --explain < metrics.txt"
    )]
    Relabel {
        /// The relay (or prometheus.yml) config whose rules and targets to use.
        #[arg(long, short)]
        config: PathBuf,
        /// The scrape config whose rules to apply (default: the first).
        #[arg(long)]
        job: Option<String>,
        /// The job's target whose job, instance and static labels the series
        /// get, by its instance or address (default: the job's first).
        #[arg(long)]
        target: Option<String>,
        /// Print every rule's effect on every series instead of the result.
        #[arg(long)]
        explain: bool,
        #[arg(long, value_enum, default_value_t = FormatArg::Text)]
        format: FormatArg,
    },
    /// Print the Kubernetes manifests: relay as a native sidecar next to your app.
    #[command(
        after_help = "Examples:\n  relay gen | kubectl apply -f -\n  relay gen --kind deployment --replicas 2 --remote-write-url http://prometheus:9090/api/v1/write"
    )]
    Gen(Box<relay::gen::Args>),
    /// Add relay as a native sidecar to the workloads of existing manifests (stdin or FILEs; stdout).
    #[command(
        after_help = "Examples:\n  relay inject deploy.yaml | kubectl apply -f -\n  kubectl get deploy web -o yaml | relay inject --remote-write-url http://prometheus:9090/api/v1/write | kubectl apply -f -\n  relay inject --remove injected.yaml"
    )]
    Inject(Box<relay::gen::inject::Args>),
    /// A synthetic app on 127.0.0.1:8001 plus relay scraping it, serving :9090.
    #[command(after_help = "Then try:\n  curl -s localhost:9090/metrics")]
    Demo {
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen_address: String,
        /// Where the synthetic app listens (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:8001")]
        agent_address: String,
        /// How many series the synthetic app exposes (about).
        #[arg(long, default_value_t = 200)]
        series: usize,
        /// Serve only the synthetic app (for benchmarks against other scrapers).
        #[arg(long)]
        agent_only: bool,
        /// Replace this share of the app's series (0 to 1) by new ones at
        /// every scrape, as a rolling Deployment's pods do (benchmarks).
        #[arg(long, default_value_t = 0.0, value_parser = fraction)]
        churn: f64,
    },
}

#[derive(Subcommand)]
enum Check {
    /// Validate config files: exit 0 when all are valid, 1 when not.
    #[command(after_help = "Example:\n  relay check config config/relay.yml")]
    Config {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Validate --web.config.file files (certificates and keys included).
    #[command(after_help = "Example:\n  relay check web-config web.yml")]
    WebConfig {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Validate an exposition strictly (promtool's rules for text, the OpenMetrics 1.0
    /// spec for openmetrics, what Prometheus's parser refuses for protobuf): exit 0 when
    /// valid, 1 with FILE:line:col: reason for each problem (protobuf: FILE:message:byte).
    #[command(
        after_help = "Examples:\n  curl -s localhost:8001/metrics | relay check metrics\n  curl -s -H 'Accept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited' localhost:8001/metrics | relay check metrics --format protobuf"
    )]
    Metrics {
        #[arg(long, value_enum, default_value_t = CheckFormatArg::Text)]
        format: CheckFormatArg,
        /// The exposition file; absent or `-` reads stdin.
        file: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    Openmetrics,
}

/// The formats `relay check metrics` reads: the text ones and protobuf.
#[derive(Clone, Copy, ValueEnum)]
enum CheckFormatArg {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    Openmetrics,
    /// Delimited protobuf MetricFamily messages (client_model).
    Protobuf,
}

impl From<CheckFormatArg> for Format {
    fn from(f: CheckFormatArg) -> Format {
        match f {
            CheckFormatArg::Text => Format::Text,
            CheckFormatArg::Openmetrics => Format::OpenMetrics,
            CheckFormatArg::Protobuf => Format::Protobuf,
        }
    }
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Text => Format::Text,
            FormatArg::Openmetrics => Format::OpenMetrics,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = relay::logging::init(cli.log_format, cli.log_level) {
        eprintln!("relay: {e}");
        return ExitCode::FAILURE;
    }
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relay: {}", chain_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `: `-joined as `{:#}` does, leaving out a cause
/// whose text the error before it already ends with (many of relay's errors
/// name their cause, which `{:#}` then printed twice: "Address already in
/// use (os error 98): Address already in use (os error 98)").
fn chain_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    let mut last = String::new();
    for cause in e.chain() {
        let this = cause.to_string();
        if !last.ends_with(&this) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&this);
        }
        last = this;
    }
    text
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run {
            config,
            listen_address,
            web_config_file,
            web_enable_lifecycle,
            web_max_connections,
            web_read_timeout,
            web_write_timeout,
        } => {
            let overrides = Overrides { listen_address };
            let (plan, warnings) = relay::plan::load(&config, &overrides)
                .with_context(|| format!("{}", config.display()))?;
            let web = match &web_config_file {
                Some(path) => relay::web::Web::open(path)
                    .with_context(|| format!("--web.config.file {}", path.display()))?,
                None => relay::web::Web::disabled(),
            };
            for w in &warnings {
                tracing::warn!(file = %config.display(), "{w}");
            }
            let source = relay::run::ConfigSource {
                path: config,
                overrides,
            };
            let options = relay::serve::Options {
                limits: relay::serve::Limits {
                    max_connections: web_max_connections as usize,
                    read_timeout: web_read_timeout,
                    write_timeout: web_write_timeout,
                },
                lifecycle: web_enable_lifecycle,
            };
            relay::buffers::cap_arenas();
            runtime()?.block_on(relay::run::run(
                plan,
                Some(source),
                std::sync::Arc::new(web),
                options,
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(Check::Config { files }) => check_configs(&files),
        Command::Check(Check::WebConfig { files }) => check_web_configs(&files),
        Command::Check(Check::Metrics { format, file }) => check_metrics(format.into(), file),
        Command::Relabel {
            config,
            job,
            target,
            explain,
            format,
        } => {
            let (plan, _) = relay::plan::load(&config, &Overrides::default())
                .with_context(|| format!("{}", config.display()))?;
            let input = read_input(None)?;
            let stdout = io::stdout();
            let mut out = io::BufWriter::new(stdout.lock());
            relay::cli::relabel::run_cli(
                &plan,
                job.as_deref(),
                target.as_deref(),
                explain,
                format.into(),
                &input,
                &mut out,
            )?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Gen(args) => {
            relay::gen::run_cli(&args, &mut io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Inject(args) => {
            relay::gen::inject::run_cli(&args, &mut io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            listen_address,
            agent_address,
            series,
            agent_only,
            churn,
        } => {
            let options = relay::cli::demo::DemoOptions {
                listen_address,
                agent_address,
                series,
                agent_only,
                churn,
            };
            runtime()?.block_on(relay::cli::demo::run(options))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A config is refused for what loading refuses, and for each target that
/// `relay run` would skip after relabeling (one line each).
fn check_configs(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    check_files(files, |file| {
        let (plan, warnings) =
            relay::plan::load(file, &Overrides::default()).map_err(|e| e.to_string())?;
        let refused: Vec<String> = plan
            .jobs
            .iter()
            .flat_map(|job| &job.refused)
            .map(ToString::to_string)
            .collect();
        if refused.is_empty() {
            Ok(warnings)
        } else {
            Err(refused.join(&format!("\n{}: ", file.display())))
        }
    })
}

fn check_web_configs(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    check_files(files, |file| {
        relay::web::WebConfig::load(file).map(|_| Vec::new())
    })
}

/// Prints `FILE: valid` (after its warnings) or `FILE: error` for each file;
/// exit 1 when any is invalid.
fn check_files<E: std::fmt::Display>(
    files: &[PathBuf],
    check: impl Fn(&std::path::Path) -> Result<Vec<String>, E>,
) -> anyhow::Result<ExitCode> {
    let mut ok = true;
    let mut stdout = io::stdout().lock();
    for file in files {
        match check(file) {
            Ok(warnings) => {
                for w in &warnings {
                    eprintln!("{}: warning: {w}", file.display());
                }
                writeln!(stdout, "{}: valid", file.display())?;
            }
            Err(e) => {
                ok = false;
                eprintln!("{}: {e}", file.display());
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn check_metrics(format: Format, file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let file = file.filter(|f| f.as_os_str() != "-");
    let input = read_input(file.as_deref())?;
    let shown = file
        .as_ref()
        .map_or("<stdin>".to_owned(), |f| f.display().to_string());
    let problems = exposition::check(&input, format);
    for p in &problems {
        eprintln!("{shown}:{p}");
    }
    if problems.is_empty() {
        // As `check config`: a silent success reads like nothing was checked.
        writeln!(io::stdout().lock(), "{shown}: valid")?;
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

fn read_input(file: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    match file {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        }
        None => {
            let mut buf = Vec::new();
            io::stdin()
                .read_to_end(&mut buf)
                .context("cannot read stdin")?;
            Ok(buf)
        }
    }
}

/// `relay gen | head` closes our stdout early; that is success, not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Parses a Prometheus duration flag (`30s`, `2m`) that must be above 0.
fn positive_duration(value: &str) -> Result<std::time::Duration, String> {
    match config::Duration::parse(value) {
        Ok(d) if !d.as_std().is_zero() => Ok(d.as_std()),
        Ok(_) => Err("must be greater than 0".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// Parses `--churn`: a share, 0 to 1.
fn fraction(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!(
            "{value:?} is not a share between 0 and 1 (0.1 is 10%)"
        )),
    }
}
