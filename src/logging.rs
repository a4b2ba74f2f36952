//! Log setup: one line per event on stderr, as logfmt (the default) or JSON,
//! with the key names Prometheus 3 writes (`time`, `level`, `msg`, then the
//! event's own fields), so the log pipelines and queries a cluster already
//! has for Prometheus read relay's lines too.
//!
//! Both formats come from one small formatter of our own rather than
//! tracing-subscriber's `fmt`/`json` layouts: those name the keys
//! `timestamp`/`message` and nest fields under `fields`, and the `fmt`
//! layout is close to logfmt but does not quote values with spaces, so a
//! logfmt parser cannot read it. Owning the formatter also keeps serde_json
//! out of the binary.
//!
//! Settings are read in the order Prometheus users expect: the
//! `--log.format`/`--log.level` flags, then `RELAY_LOG_FORMAT`/`RELAY_LOG`,
//! then the defaults (logfmt, info).

use std::fmt::{self, Write as _};
use std::str::FromStr;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The environment variable that picks the format when no flag does.
pub const FORMAT_ENV: &str = "RELAY_LOG_FORMAT";
/// The environment variable holding the level (or an `EnvFilter` directive
/// such as `relay=debug,info`) when no flag does.
pub const LEVEL_ENV: &str = "RELAY_LOG";

/// How a log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `time=… level=INFO msg="…" key=value`, values quoted when needed.
    #[default]
    Logfmt,
    /// One JSON object per line with the same keys.
    Json,
}

impl FromStr for LogFormat {
    type Err = LogError;
    fn from_str(s: &str) -> Result<Self, LogError> {
        match s {
            "logfmt" => Ok(LogFormat::Logfmt),
            "json" => Ok(LogFormat::Json),
            other => Err(LogError::Format(other.to_owned())),
        }
    }
}

/// The least severe level that is logged (Prometheus's `--log.level` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    fn directive(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

impl FromStr for LogLevel {
    type Err = LogError;
    fn from_str(s: &str) -> Result<Self, LogError> {
        match s {
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" => Ok(LogLevel::Warn),
            "error" => Ok(LogLevel::Error),
            other => Err(LogError::Level(other.to_owned())),
        }
    }
}

/// A log setting relay cannot use; refused at start rather than ignored,
/// so a typo does not silently hide the lines someone asked for.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("unknown log format {0:?}: use logfmt or json")]
    Format(String),
    #[error("unknown log level {0:?}: use debug, info, warn or error")]
    Level(String),
    #[error("{var}={value:?}: {reason}")]
    Env {
        var: &'static str,
        value: String,
        reason: String,
    },
}

/// Installs the global subscriber. `format` and `level` are the flags
/// (`None` when not given); the environment fills what they leave open.
pub fn init(format: Option<LogFormat>, level: Option<LogLevel>) -> Result<(), LogError> {
    let env = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
    let format = match (format, env(FORMAT_ENV)) {
        (Some(f), _) => f,
        (None, Some(value)) => value.parse().map_err(|e: LogError| LogError::Env {
            var: FORMAT_ENV,
            reason: e.to_string(),
            value,
        })?,
        (None, None) => LogFormat::default(),
    };
    let filter = match (level, env(LEVEL_ENV)) {
        (Some(l), _) => EnvFilter::new(l.directive()),
        (None, Some(value)) => level_filter(&value).map_err(|reason| LogError::Env {
            var: LEVEL_ENV,
            reason,
            value,
        })?,
        (None, None) => EnvFilter::new("info"),
    };
    // Fails only when a subscriber is already set (tests calling twice).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(LineFormat { format })
        .try_init();
    Ok(())
}

/// `RELAY_LOG`'s value as a filter. A bare word must be a level:
/// `EnvFilter` reads any other word (`warning`, `verbose`) as the name of a
/// module to log at every level, which turns off every line relay writes,
/// errors included.
fn level_filter(value: &str) -> Result<EnvFilter, String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    for directive in value.split(',').map(str::trim) {
        let bare = !directive.contains(['=', '[', ':']);
        if bare && !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(directive)) {
            return Err(format!(
                "unknown log level {directive:?}: use debug, info, warn or error \
                 (or a filter such as relay=debug,info)"
            ));
        }
    }
    EnvFilter::try_new(value).map_err(|e| e.to_string())
}

/// Formats one event as a logfmt or JSON line.
pub struct LineFormat {
    pub format: LogFormat,
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut time = String::new();
        SystemTime.format_time(&mut Writer::new(&mut time))?;
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = level_name(*event.metadata().level());
        let mut line = String::with_capacity(128);
        match self.format {
            LogFormat::Logfmt => {
                line.push_str("time=");
                logfmt_value(&mut line, &time);
                line.push_str(" level=");
                line.push_str(level);
                line.push_str(" msg=");
                logfmt_value(&mut line, &fields.message);
                for (key, value) in &fields.rest {
                    line.push(' ');
                    line.push_str(key);
                    line.push('=');
                    logfmt_value(&mut line, value.text());
                }
            }
            LogFormat::Json => {
                line.push_str("{\"time\":");
                json_string(&mut line, &time);
                line.push_str(",\"level\":");
                json_string(&mut line, level);
                line.push_str(",\"msg\":");
                json_string(&mut line, &fields.message);
                for (key, value) in &fields.rest {
                    line.push(',');
                    json_string(&mut line, key);
                    line.push(':');
                    match value {
                        Value::Number(n) => line.push_str(n),
                        Value::Text(t) => json_string(&mut line, t),
                    }
                }
                line.push('}');
            }
        }
        line.push('\n');
        w.write_str(&line)
    }
}

/// Level names as Prometheus 3 (Go's slog) writes them.
fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// A field's value: numbers and booleans stay bare in JSON.
enum Value {
    Number(String),
    Text(String),
}

impl Value {
    fn text(&self) -> &str {
        match self {
            Value::Number(s) | Value::Text(s) => s,
        }
    }
}

/// The event's message and its other fields, in the order they were given.
#[derive(Default)]
struct Fields {
    message: String,
    rest: Vec<(&'static str, Value)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.put(field, Value::Text(text));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::Text(value.to_owned()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::Number(value.to_string()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::Number(value.to_string()));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Number(value.to_string()));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinities: those go as strings.
        if value.is_finite() {
            self.put(field, Value::Number(value.to_string()));
        } else {
            self.put(field, Value::Text(value.to_string()));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::Text(value.to_string()));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = value.text().to_owned();
        } else {
            self.rest.push((field.name(), value));
        }
    }
}

/// Appends a logfmt value, quoted and escaped (as go-logfmt does) when it
/// is empty or holds a space, `=`, `"` or a control character, so that one
/// event stays one parseable line.
fn logfmt_value(out: &mut String, value: &str) {
    let needs_quotes = value.is_empty()
        || value
            .chars()
            .any(|c| c <= ' ' || c == '=' || c == '"' || c == '\u{7f}');
    if !needs_quotes {
        out.push_str(value);
        return;
    }
    out.push('"');
    escape_into(out, value);
    out.push('"');
}

/// Appends a JSON string literal.
fn json_string(out: &mut String, value: &str) {
    out.push('"');
    escape_into(out, value);
    out.push('"');
}

/// The escapes logfmt and JSON share: backslash, quote, control characters.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logfmt(v: &str) -> String {
        let mut s = String::new();
        logfmt_value(&mut s, v);
        s
    }

    #[test]
    fn logfmt_quotes_only_what_needs_it() {
        assert_eq!(logfmt("one/http://x:1/metrics"), "one/http://x:1/metrics");
        assert_eq!(logfmt(""), "\"\"");
        assert_eq!(logfmt("a b"), "\"a b\"");
        assert_eq!(logfmt("k=v"), "\"k=v\"");
        assert_eq!(logfmt("say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"");
        assert_eq!(logfmt("bell\u{7}"), "\"bell\\u0007\"");
    }

    #[test]
    fn json_strings_escape_controls() {
        let mut s = String::new();
        json_string(&mut s, "a\"b\\c\td\u{1}");
        assert_eq!(s, "\"a\\\"b\\\\c\\td\\u0001\"");
    }

    #[test]
    fn flags_parse_as_prometheus_spells_them() {
        assert_eq!("json".parse::<LogFormat>().ok(), Some(LogFormat::Json));
        assert_eq!("logfmt".parse::<LogFormat>().ok(), Some(LogFormat::Logfmt));
        assert!("text".parse::<LogFormat>().is_err());
        assert_eq!("warn".parse::<LogLevel>().ok(), Some(LogLevel::Warn));
        assert!("trace".parse::<LogLevel>().is_err());
    }
}
