//! The daemon's configuration file (default `/etc/trafgend/trafgend.toml`): its schema, parsing
//! and validation. Every error names the file, the line:column and the field, e.g.
//! `trafgend.toml:12:7: field `stream["web"].pps`: must be a finite number > 0, got 0`.
//!
//! Owns: [`Config`] and its parts, [`ConfigError`], and the mapping from TOML byte spans to line/column.
//! Does not: open the model or pcap files named here, nor check that they or the interfaces
//! exist (the stages that use them do, when the daemon starts them); nor reload or watch the
//! file (the daemon's control plane calls [`Config::load`] again on SIGHUP).
//!
//! Parsing runs in two steps: serde reads the text into `Raw*` structs that keep the byte span
//! of every value ([`toml::Spanned`]), then `validate` turns them into the public types, so a
//! semantic error (bad CIDR, duplicate name, address outside the allowlist) points at the
//! offending value just like a syntax error does.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::emit::StallPolicy;
pub use crate::wire::cidr::{Cidr, CidrError};
use toml::Spanned;

/// Where `trafgend` looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/trafgend/trafgend.toml";

/// The metrics/status listener when `[daemon] metrics_listen` is not set: localhost only.
pub const DEFAULT_METRICS_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9177);

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
const MAX_INTERFACE_LEN: usize = 15;

// ---------------------------------------------------------------------------------------------
// The validated configuration
// ---------------------------------------------------------------------------------------------

/// A parsed and validated configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub daemon: DaemonConfig,
    /// At least one; names are unique.
    pub streams: Vec<StreamConfig>,
}

/// The `[daemon]` table: settings of the process itself.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    /// Address of the Prometheus metrics and status endpoint.
    pub metrics_listen: SocketAddr,
    pub log_format: LogFormat,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig { metrics_listen: DEFAULT_METRICS_LISTEN, log_format: LogFormat::Journald }
    }
}

/// How the daemon writes its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line per event, no timestamp or colour (journald adds its own timestamp).
    Journald,
    /// Human-friendly, with timestamps (and colour on a terminal).
    Pretty,
}

/// One `[[stream]]`: a generator bound to one interface.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamConfig {
    /// Unique within the file; used in logs and metric labels.
    pub name: String,
    /// The interface the frames are sent on.
    pub interface: String,
    pub source: Source,
    /// Seed of the generator: same model + seed + options = same traffic.
    pub seed: u64,
    pub rate: Rate,
    /// The prefixes the stream may send to and from; never empty.
    pub allowlist: Vec<Cidr>,
    /// The subnets that client and server addresses are drawn from; all inside `allowlist`.
    pub addresses: AddressPlan,
    /// How long, how much and how the stream runs, beyond its pace.
    pub controls: Controls,
}

/// The optional run controls of a stream (the same knobs as `trafgen send`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Controls {
    /// Ignore the schedule and send as fast as the interface takes frames.
    pub topspeed: bool,
    /// End after this many seconds (of schedule; of wall-clock time with `topspeed`).
    pub duration_s: Option<f64>,
    /// End after this many frames.
    pub limit: Option<u64>,
    /// Pcap only: play the capture this many times (default 1).
    pub loops: Option<u64>,
    /// Hard ceilings, whatever the schedule asks.
    pub ceiling_pps: Option<f64>,
    pub ceiling_mbps: Option<f64>,
    /// After a stall: `burst` (default) or `shift`.
    pub stall: StallPolicy,
    /// Pin the stream's pacer thread to this CPU.
    pub cpu: Option<usize>,
    /// Run the pacer thread under SCHED_FIFO at this priority (1..=99; needs CAP_SYS_NICE).
    pub fifo_priority: Option<i32>,
    /// Model only: a wire-settings TOML (any `WireConfig` field); `[stream.addresses]` wins.
    pub wire_config: Option<PathBuf>,
    /// Model only: seconds of traffic generated before the first frame and left out, so the
    /// stream starts at its steady rate with flows in progress (a warm start).
    pub warm_up_s: Option<f64>,
    /// Model only: every TCP flow with both its sides, whatever the model learnt
    /// (`generate --both-sides`).
    pub both_sides: bool,
}

/// What a stream generates from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A trained model directory (`models/<name>/`).
    Model(PathBuf),
    /// A capture to replay.
    Pcap(PathBuf),
}

/// The pace of a stream. At most one of `pps`, `mbps`, `multiplier` may be set, as with
/// tcpreplay's options of the same names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// The timing the model generates, or the capture's own timing.
    Native,
    /// Packets per second.
    Pps(f64),
    /// Megabits per second (10^6 bit/s, frame bytes).
    Mbps(f64),
    /// The native timing sped up by this factor (2.0 = twice as fast).
    Multiplier(f64),
}

/// `[stream.addresses]`: where the address plan draws client and server addresses from.
/// Each is optional (the wire stage then uses its defaults inside the allowlist).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPlan {
    pub client_v4: Option<Cidr>,
    pub server_v4: Option<Cidr>,
    pub client_v6: Option<Cidr>,
    pub server_v6: Option<Cidr>,
}

impl Source {
    /// `"model"` or `"pcap"`, the key that set it.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Model(_) => "model",
            Source::Pcap(_) => "pcap",
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            Source::Model(p) | Source::Pcap(p) => p,
        }
    }
}

/// Compact, without spaces (it goes into `key=value` log fields): `native`, `1000pps`,
/// `50Mbps`, `native*2`.
impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Native => write!(f, "native"),
            Rate::Pps(v) => write!(f, "{v}pps"),
            Rate::Mbps(v) => write!(f, "{v}Mbps"),
            Rate::Multiplier(v) => write!(f, "native*{v}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {error}")]
    Read { path: PathBuf, error: std::io::Error },

    #[error("{0}")]
    Invalid(Box<Diagnostic>),
}

/// One problem in a configuration file, located for a human: `file:line:column: field `f`: msg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// Dotted path of the field, e.g. `daemon.log_format` or `stream["web"].allowlist[1]`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Diagnostic { path, line, column, field, message } = self;
        write!(f, "{}:{line}:{column}: field `{field}`: {message}", path.display())
    }
}

impl ConfigError {
    /// The located problem, when the file was read but is not valid.
    pub fn diagnostic(&self) -> Option<&Diagnostic> {
        match self {
            ConfigError::Invalid(d) => Some(d),
            ConfigError::Read { .. } => None,
        }
    }
}

/// A problem found before it is located: a byte span of the text, a field and a message.
struct Issue {
    span: Range<usize>,
    field: String,
    message: String,
}

impl Issue {
    fn new(span: Range<usize>, field: impl Into<String>, message: impl Into<String>) -> Issue {
        Issue { span, field: field.into(), message: message.into() }
    }

    fn locate(self, text: &str, path: &Path) -> ConfigError {
        let (line, column) = line_column(text, self.span.start);
        ConfigError::Invalid(Box::new(Diagnostic {
            path: path.to_owned(),
            line,
            column,
            field: self.field,
            message: self.message,
        }))
    }
}

pub use crate::text_position::line_column;

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConfigError::Read { path: path.to_owned(), error })?;
        Config::from_toml_str(&text, path)
    }

    /// Parses and validates `text`; `path` is only used to name the file in errors.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawFile =
            toml::from_str(text).map_err(|e| toml_issue(&e, text).locate(text, path))?;
        validate(raw, text).map_err(|issue| issue.locate(text, path))
    }
}

/// Turns a serde/TOML error into an [`Issue`]: toml gives the span and the message; the field
/// is read off the text around the span (the enclosing table header and the key on the line),
/// or from the message for missing/unknown fields.
fn toml_issue(error: &toml::de::Error, text: &str) -> Issue {
    let span = error.span().unwrap_or(text.len()..text.len());
    let message = error.message().trim_end().to_owned();
    let field = field_at(text, span.start, &message);
    Issue::new(span, field, message)
}

/// The dotted field path for an error at byte `offset`.
fn field_at(text: &str, offset: usize, message: &str) -> String {
    let (line_no, _) = line_column(text, offset);
    let lines: Vec<&str> = text.lines().collect();
    let current = lines.get(line_no.saturating_sub(1)).copied().unwrap_or("");
    let missing = quoted_after(message, "missing field `");
    if let Some(header) = table_header(current) {
        // The error is on a `[table]` line itself: a field missing from that table, or an
        // unknown table.
        return match missing {
            Some(key) => format!("{header}.{key}"),
            None => header,
        };
    }
    let header = lines.iter().take(line_no.saturating_sub(1)).rev().find_map(|l| table_header(l));
    let key = missing.or_else(|| quoted_after(message, "unknown field `")).or_else(|| {
        lines
            .iter()
            .take(line_no)
            .rev()
            .take_while(|l| table_header(l).is_none())
            .find_map(|l| assigned_key(l))
    });
    match (header, key) {
        (Some(h), Some(k)) => format!("{h}.{k}"),
        (Some(h), None) => h,
        (None, Some(k)) => k,
        (None, None) => "(top level)".to_owned(),
    }
}

/// `stream` for a line `[[stream]]`, `stream.addresses` for `[stream.addresses]`.
fn table_header(line: &str) -> Option<String> {
    let line = line.trim();
    let inner = line.strip_prefix('[')?;
    let inner = inner.strip_prefix('[').unwrap_or(inner);
    let end = inner.find(']')?;
    let name: String = inner.get(..end)?.split('.').map(str::trim).collect::<Vec<_>>().join(".");
    Some(name).filter(|n| !n.is_empty())
}

/// `pps` for a line `pps = 10` (bare or dotted keys; quoted keys are left alone).
fn assigned_key(line: &str) -> Option<String> {
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let ok = !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' '));
    ok.then(|| key.split('.').map(str::trim).collect::<Vec<_>>().join("."))
}

/// The text between `prefix` and the next backquote in `message`.
fn quoted_after(message: &str, prefix: &str) -> Option<String> {
    let rest = message.split_once(prefix)?.1;
    Some(rest.split_once('`')?.0.to_owned())
}

// ---------------------------------------------------------------------------------------------
// The file as serde reads it
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    daemon: Option<RawDaemon>,
    #[serde(default)]
    stream: Vec<RawStream>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    metrics_listen: Option<Spanned<String>>,
    log_format: Option<LogFormat>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStream {
    name: Spanned<String>,
    interface: Spanned<String>,
    model: Option<Spanned<PathBuf>>,
    pcap: Option<Spanned<PathBuf>>,
    seed: u64,
    pps: Option<Spanned<f64>>,
    mbps: Option<Spanned<f64>>,
    multiplier: Option<Spanned<f64>>,
    allowlist: Spanned<Vec<Spanned<String>>>,
    addresses: Option<RawAddresses>,
    topspeed: Option<Spanned<bool>>,
    duration: Option<Spanned<f64>>,
    limit: Option<Spanned<u64>>,
    #[serde(rename = "loop")]
    loops: Option<Spanned<u64>>,
    ceiling_pps: Option<Spanned<f64>>,
    ceiling_mbps: Option<Spanned<f64>>,
    stall: Option<Spanned<String>>,
    cpu: Option<Spanned<u64>>,
    fifo_priority: Option<Spanned<i64>>,
    wire_config: Option<Spanned<PathBuf>>,
    warm_up: Option<Spanned<f64>>,
    both_sides: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAddresses {
    client_v4: Option<Spanned<String>>,
    server_v4: Option<Spanned<String>>,
    client_v6: Option<Spanned<String>>,
    server_v6: Option<Spanned<String>>,
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

fn validate(raw: RawFile, text: &str) -> Result<Config, Issue> {
    let daemon = validate_daemon(raw.daemon)?;
    if raw.stream.is_empty() {
        let end = text.len();
        return Err(Issue::new(
            end..end,
            "stream",
            "no [[stream]] table: at least one is required",
        ));
    }
    let mut names = HashSet::new();
    let mut streams = Vec::with_capacity(raw.stream.len());
    for raw_stream in raw.stream {
        let name_span = raw_stream.name.span();
        let stream = validate_stream(raw_stream)?;
        if !names.insert(stream.name.clone()) {
            let msg = format!("duplicate stream name {:?}: names must be unique", stream.name);
            return Err(Issue::new(name_span, "stream.name", msg));
        }
        streams.push(stream);
    }
    Ok(Config { daemon, streams })
}

fn validate_daemon(raw: Option<RawDaemon>) -> Result<DaemonConfig, Issue> {
    let mut daemon = DaemonConfig::default();
    let Some(raw) = raw else { return Ok(daemon) };
    if let Some(listen) = raw.metrics_listen {
        daemon.metrics_listen = listen.get_ref().parse().map_err(|_| {
            let msg = format!(
                "{:?} is not IP:PORT (e.g. \"127.0.0.1:9177\" or \"[::1]:9177\")",
                listen.get_ref()
            );
            Issue::new(listen.span(), "daemon.metrics_listen", msg)
        })?;
    }
    if let Some(format) = raw.log_format {
        daemon.log_format = format;
    }
    Ok(daemon)
}

fn validate_stream(raw: RawStream) -> Result<StreamConfig, Issue> {
    let name = validate_name(&raw.name)?;
    let field = |f: &str| format!("stream[{name:?}].{f}");
    let interface = validate_interface(&raw.interface, &field("interface"))?;
    let source = validate_source(raw.model, raw.pcap, raw.name.span(), &field)?;
    let (pps, mbps, multiplier) = (raw.pps.clone(), raw.mbps.clone(), raw.multiplier.clone());
    let rate = validate_rate(raw.pps, raw.mbps, raw.multiplier, &field)?;
    let allowlist = validate_allowlist(&raw.allowlist, &field("allowlist"))?;
    let addresses = match raw.addresses {
        Some(a) => validate_addresses(a, &allowlist, &name, &field)?,
        None => AddressPlan::default(),
    };
    let mut controls = Controls::default();
    if let Some(t) = raw.topspeed {
        if *t.get_ref() {
            if let Some((key, v)) = [("pps", &pps), ("mbps", &mbps), ("multiplier", &multiplier)]
                .into_iter()
                .find_map(|(k, v)| v.as_ref().map(|v| (k, v)))
            {
                let msg = format!("`{key}` sets a pace, `topspeed = true` ignores it: use one or the other");
                return Err(Issue::new(v.span(), field(key), msg));
            }
        }
        controls.topspeed = t.into_inner();
    }
    controls.duration_s = positive(raw.duration, &field("duration"))?;
    controls.ceiling_pps = positive(raw.ceiling_pps, &field("ceiling_pps"))?;
    controls.ceiling_mbps = positive(raw.ceiling_mbps, &field("ceiling_mbps"))?;
    controls.limit = at_least_one(raw.limit, &field("limit"))?;
    if let (Some(l), Source::Model(_)) = (&raw.loops, &source) {
        let msg = "`loop` replays a capture: it needs `pcap`, not `model`";
        return Err(Issue::new(l.span(), field("loop"), msg));
    }
    controls.loops = at_least_one(raw.loops, &field("loop"))?;
    if let (Some(w), Source::Pcap(_)) = (&raw.wire_config, &source) {
        let msg = "`wire_config` sets how a model's frames are built: it needs `model`, not `pcap`";
        return Err(Issue::new(w.span(), field("wire_config"), msg));
    }
    if let Some(stall) = raw.stall {
        controls.stall = stall
            .get_ref()
            .parse()
            .map_err(|e: String| Issue::new(stall.span(), field("stall"), e))?;
    }
    if let Some(cpu) = raw.cpu {
        let max = libc::CPU_SETSIZE as u64;
        if *cpu.get_ref() >= max {
            let msg = format!("CPU {} does not exist: must be below {max}", cpu.get_ref());
            return Err(Issue::new(cpu.span(), field("cpu"), msg));
        }
        controls.cpu = Some(*cpu.get_ref() as usize);
    }
    if let Some(prio) = raw.fifo_priority {
        if !(1..=99).contains(prio.get_ref()) {
            let msg = format!("SCHED_FIFO priorities are 1 to 99, got {}", prio.get_ref());
            return Err(Issue::new(prio.span(), field("fifo_priority"), msg));
        }
        controls.fifo_priority = Some(*prio.get_ref() as i32);
    }
    if let Some(w) = raw.wire_config {
        controls.wire_config = Some(non_empty_path(w, &field("wire_config"))?);
    }
    if let (Some(w), Source::Pcap(_)) = (&raw.warm_up, &source) {
        let msg = "`warm_up` starts a model's generator ahead of time: it needs `model`, not `pcap`";
        return Err(Issue::new(w.span(), field("warm_up"), msg));
    }
    controls.warm_up_s = positive(raw.warm_up, &field("warm_up"))?;
    if let Some(b) = raw.both_sides {
        if matches!(source, Source::Pcap(_)) {
            let msg = "`both_sides` shapes a model's flows: it needs `model`, not `pcap`";
            return Err(Issue::new(b.span(), field("both_sides"), msg));
        }
        controls.both_sides = *b.get_ref();
    }
    Ok(StreamConfig { name, interface, source, seed: raw.seed, rate, allowlist, addresses, controls })
}

/// An optional number that must be finite and > 0.
fn positive(value: Option<Spanned<f64>>, field: &str) -> Result<Option<f64>, Issue> {
    let Some(value) = value else { return Ok(None) };
    let v = *value.get_ref();
    if !(v.is_finite() && v > 0.0) {
        return Err(Issue::new(value.span(), field, format!("must be a finite number > 0, got {v}")));
    }
    Ok(Some(v))
}

/// An optional count that must be at least 1.
fn at_least_one(value: Option<Spanned<u64>>, field: &str) -> Result<Option<u64>, Issue> {
    let Some(value) = value else { return Ok(None) };
    if *value.get_ref() == 0 {
        return Err(Issue::new(value.span(), field, "must be at least 1, got 0"));
    }
    Ok(Some(*value.get_ref()))
}

fn validate_name(name: &Spanned<String>) -> Result<String, Issue> {
    let value = name.get_ref();
    let ok = !value.is_empty()
        && value.len() <= 64
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(value.clone())
    } else {
        let msg = format!("{value:?} is not a stream name: use 1 to 64 of A-Z a-z 0-9 - _ .");
        Err(Issue::new(name.span(), "stream.name", msg))
    }
}

fn validate_interface(interface: &Spanned<String>, field: &str) -> Result<String, Issue> {
    let value = interface.get_ref();
    let ok = !value.is_empty()
        && value.len() <= MAX_INTERFACE_LEN
        && value.chars().all(|c| c.is_ascii_graphic() && c != '/' && c != ':');
    if ok {
        Ok(value.clone())
    } else {
        let msg = format!(
            "{value:?} is not an interface name (1 to {MAX_INTERFACE_LEN} visible characters, no '/' or ':')"
        );
        Err(Issue::new(interface.span(), field, msg))
    }
}

fn validate_source(
    model: Option<Spanned<PathBuf>>,
    pcap: Option<Spanned<PathBuf>>,
    name_span: Range<usize>,
    field: &dyn Fn(&str) -> String,
) -> Result<Source, Issue> {
    let source = match (model, pcap) {
        (Some(m), None) => Source::Model(non_empty_path(m, &field("model"))?),
        (None, Some(p)) => Source::Pcap(non_empty_path(p, &field("pcap"))?),
        (Some(_), Some(p)) => {
            let msg = "set either `model` or `pcap`, not both";
            return Err(Issue::new(p.span(), field("pcap"), msg));
        }
        (None, None) => {
            let msg =
                "set one of `model` (a trained model directory) or `pcap` (a capture to replay)";
            return Err(Issue::new(name_span, field("model"), msg));
        }
    };
    Ok(source)
}

fn non_empty_path(path: Spanned<PathBuf>, field: &str) -> Result<PathBuf, Issue> {
    if path.get_ref().as_os_str().is_empty() {
        return Err(Issue::new(path.span(), field, "the path is empty"));
    }
    Ok(path.into_inner())
}

fn validate_rate(
    pps: Option<Spanned<f64>>,
    mbps: Option<Spanned<f64>>,
    multiplier: Option<Spanned<f64>>,
    field: &dyn Fn(&str) -> String,
) -> Result<Rate, Issue> {
    let set: Vec<(&str, Spanned<f64>)> = [("pps", pps), ("mbps", mbps), ("multiplier", multiplier)]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
    for (key, value) in &set {
        let v = *value.get_ref();
        if !(v.is_finite() && v > 0.0) {
            let msg = format!("must be a finite number > 0, got {v}");
            return Err(Issue::new(value.span(), field(key), msg));
        }
    }
    if let [(first, _), (second, value), ..] = set.as_slice() {
        let msg =
            format!("`{first}` is already set: use at most one of `pps`, `mbps`, `multiplier`");
        return Err(Issue::new(value.span(), field(second), msg));
    }
    Ok(match set.first() {
        None => Rate::Native,
        Some((key, value)) => {
            let v = *value.get_ref();
            match *key {
                "pps" => Rate::Pps(v),
                "mbps" => Rate::Mbps(v),
                _ => Rate::Multiplier(v),
            }
        }
    })
}

fn parse_cidr(value: &Spanned<String>, field: &str) -> Result<Cidr, Issue> {
    value
        .get_ref()
        .trim()
        .parse()
        .map_err(|e: CidrError| Issue::new(value.span(), field, e.to_string()))
}

fn validate_allowlist(
    list: &Spanned<Vec<Spanned<String>>>,
    field: &str,
) -> Result<Vec<Cidr>, Issue> {
    if list.get_ref().is_empty() {
        let msg =
            "the allowlist is empty: list the prefixes this stream may use, e.g. [\"10.0.0.0/8\"]";
        return Err(Issue::new(list.span(), field, msg));
    }
    list.get_ref()
        .iter()
        .enumerate()
        .map(|(i, entry)| parse_cidr(entry, &format!("{field}[{i}]")))
        .collect()
}

fn validate_addresses(
    raw: RawAddresses,
    allowlist: &[Cidr],
    stream: &str,
    field: &dyn Fn(&str) -> String,
) -> Result<AddressPlan, Issue> {
    let one =
        |value: Option<Spanned<String>>, key: &str, v4: bool| -> Result<Option<Cidr>, Issue> {
            let Some(value) = value else { return Ok(None) };
            let f = field(&format!("addresses.{key}"));
            let cidr = parse_cidr(&value, &f)?;
            if cidr.is_ipv4() != v4 {
                let family = if v4 { "an IPv4" } else { "an IPv6" };
                return Err(Issue::new(value.span(), f, format!("{cidr} is not {family} prefix")));
            }
            if !allowlist.iter().any(|allowed| allowed.contains(&cidr)) {
                let list: Vec<String> = allowlist.iter().map(Cidr::to_string).collect();
                let msg = format!(
                    "stream {stream:?}: {cidr} does not lie inside the allowlist [{}]",
                    list.join(", ")
                );
                return Err(Issue::new(value.span(), f, msg));
            }
            Ok(Some(cidr))
        };
    Ok(AddressPlan {
        client_v4: one(raw.client_v4, "client_v4", true)?,
        server_v4: one(raw.server_v4, "server_v4", true)?,
        client_v6: one(raw.client_v6, "client_v6", false)?,
        server_v6: one(raw.server_v6, "server_v6", false)?,
    })
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[daemon]
metrics_listen = "[::1]:9100"
log_format = "pretty"

[[stream]]
name = "lab-web"
interface = "veth0"
model = "models/web"
seed = 42
pps = 1000
allowlist = ["10.0.0.0/8", "fd00::/8"]

[stream.addresses]
client_v4 = "10.1.0.0/16"
server_v4 = "10.2.0.0/16"
client_v6 = "fd00:1::/64"

[[stream]]
name = "replay"
interface = "eth1"
pcap = "/var/lib/trafgend/sample.pcapng"
seed = 7
multiplier = 2.5
allowlist = [
    "192.168.0.0/16",
]
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(text, Path::new("t.toml"))
    }

    /// The error for `text`, checked to carry the expected location and field.
    fn check_err(text: &str, line: usize, column: usize, field: &str) -> String {
        let err = match parse(text) {
            Ok(cfg) => panic!("expected an error, got {cfg:?}"),
            Err(e) => e,
        };
        let shown = err.to_string();
        let d = err.diagnostic().unwrap_or_else(|| panic!("not located: {shown}"));
        assert_eq!((d.line, d.column, d.field.as_str()), (line, column, field), "{shown}");
        assert!(
            shown.starts_with(&format!("t.toml:{line}:{column}: field `{field}`: ")),
            "{shown}"
        );
        shown
    }

    /// A one-stream file with `extra` lines appended inside the stream table.
    fn stream_with(extra: &str) -> String {
        format!(
            "[[stream]]\nname = \"s\"\ninterface = \"eth0\"\nmodel = \"m\"\nseed = 1\nallowlist = [\"10.0.0.0/8\"]\n{extra}"
        )
    }

    #[test]
    fn good_config_parses() {
        let cfg = parse(GOOD).expect("valid");
        assert_eq!(cfg.daemon.metrics_listen, "[::1]:9100".parse::<SocketAddr>().unwrap());
        assert_eq!(cfg.daemon.log_format, LogFormat::Pretty);
        assert_eq!(cfg.streams.len(), 2);
        let web = &cfg.streams[0];
        assert_eq!(web.name, "lab-web");
        assert_eq!(web.interface, "veth0");
        assert_eq!(web.source, Source::Model("models/web".into()));
        assert_eq!(web.seed, 42);
        assert_eq!(web.rate, Rate::Pps(1000.0));
        assert_eq!(web.allowlist, vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()]);
        assert_eq!(web.addresses.client_v4, Some("10.1.0.0/16".parse().unwrap()));
        assert_eq!(web.addresses.client_v6, Some("fd00:1::/64".parse().unwrap()));
        assert_eq!(web.addresses.server_v6, None);
        let replay = &cfg.streams[1];
        assert_eq!(replay.source, Source::Pcap("/var/lib/trafgend/sample.pcapng".into()));
        assert_eq!(replay.rate, Rate::Multiplier(2.5));
        assert_eq!(replay.addresses, AddressPlan::default());
    }

    #[test]
    fn an_empty_key_is_an_unknown_field_located_like_any_other() {
        // found by the config fuzz target: TOML allows `''` as a key
        let shown = check_err("''='''''4='''''", 1, 1, "");
        assert!(shown.contains("unknown field ``"), "{shown}");
    }

    #[test]
    fn daemon_table_is_optional() {
        let cfg = parse(&stream_with("")).expect("valid");
        assert_eq!(cfg.daemon, DaemonConfig::default());
        assert_eq!(cfg.streams[0].rate, Rate::Native);
    }

    #[test]
    fn reference_config_parses() {
        let text = include_str!("../../etc/trafgend.toml");
        let cfg = Config::from_toml_str(text, Path::new("etc/trafgend.toml"))
            .expect("etc/trafgend.toml is valid");
        assert!(!cfg.streams.is_empty());
    }

    #[test]
    fn syntax_error() {
        let msg = check_err("[daemon]\nlog_format = \"pretty\nx = 1\n", 2, 21, "daemon.log_format");
        assert!(msg.contains("string"), "{msg}");
    }

    #[test]
    fn unknown_field() {
        let msg = check_err(&stream_with("ppz = 3\n"), 7, 1, "stream.ppz");
        assert!(msg.contains("unknown field"), "{msg}");
    }

    #[test]
    fn unknown_table() {
        check_err(&format!("[deamon]\nx = 1\n{}", stream_with("")), 1, 2, "deamon");
    }

    #[test]
    fn wrong_type() {
        let text = "[[stream]]\nname = \"s\"\ninterface = \"eth0\"\nmodel = \"m\"\nseed = \"x\"\nallowlist = []\n";
        check_err(text, 5, 8, "stream.seed");
    }

    #[test]
    fn negative_seed() {
        let text = stream_with("").replace("seed = 1", "seed = -1");
        check_err(&text, 5, 8, "stream.seed");
    }

    #[test]
    fn missing_field() {
        let text =
            "[[stream]]\nname = \"s\"\nmodel = \"m\"\nseed = 1\nallowlist = [\"10.0.0.0/8\"]\n";
        let msg = check_err(text, 1, 1, "stream.interface");
        assert!(msg.contains("missing field"), "{msg}");
    }

    #[test]
    fn missing_field_in_a_later_stream() {
        let text = format!("{}[[stream]]\nname = \"t\"\n", stream_with(""));
        check_err(&text, 7, 1, "stream.interface");
    }

    #[test]
    fn bad_log_format() {
        let text = format!("[daemon]\nlog_format = \"json\"\n{}", stream_with(""));
        check_err(&text, 2, 14, "daemon.log_format");
    }

    #[test]
    fn bad_metrics_listen() {
        let text = format!("[daemon]\nmetrics_listen = \"localhost\"\n{}", stream_with(""));
        check_err(&text, 2, 18, "daemon.metrics_listen");
    }

    #[test]
    fn no_stream() {
        let msg = check_err("[daemon]\nlog_format = \"pretty\"\n", 3, 1, "stream");
        assert!(msg.contains("at least one"), "{msg}");
    }

    #[test]
    fn duplicate_names() {
        let text = format!("{}{}", stream_with(""), stream_with(""));
        let msg = check_err(&text, 8, 8, "stream.name");
        assert!(msg.contains("duplicate"), "{msg}");
    }

    #[test]
    fn bad_name_and_interface() {
        check_err(&stream_with("").replace("\"s\"", "\"a b\""), 2, 8, "stream.name");
        check_err(
            &stream_with("").replace("eth0", "a-very-long-interface"),
            3,
            13,
            "stream[\"s\"].interface",
        );
    }

    #[test]
    fn model_and_pcap() {
        let msg = check_err(&stream_with("pcap = \"x.pcap\"\n"), 7, 8, "stream[\"s\"].pcap");
        assert!(msg.contains("not both"), "{msg}");
        let neither = stream_with("").replace("model = \"m\"\n", "");
        check_err(&neither, 2, 8, "stream[\"s\"].model");
    }

    #[test]
    fn rates_must_be_positive() {
        check_err(&stream_with("pps = 0\n"), 7, 7, "stream[\"s\"].pps");
        check_err(&stream_with("mbps = -1.5\n"), 7, 8, "stream[\"s\"].mbps");
        check_err(&stream_with("multiplier = nan\n"), 7, 14, "stream[\"s\"].multiplier");
        check_err(&stream_with("pps = inf\n"), 7, 7, "stream[\"s\"].pps");
    }

    #[test]
    fn one_rate_at_most() {
        let msg = check_err(&stream_with("pps = 10\nmbps = 5\n"), 8, 8, "stream[\"s\"].mbps");
        assert!(msg.contains("at most one"), "{msg}");
        assert_eq!(parse(&stream_with("mbps = 5\n")).unwrap().streams[0].rate, Rate::Mbps(5.0));
    }

    #[test]
    fn controls_parse() {
        let text = stream_with("duration = 10\nlimit = 5000\nceiling_pps = 2e4\nceiling_mbps = 100\nstall = \"shift\"\ncpu = 1\nfifo_priority = 50\nwire_config = \"w.toml\"\nwarm_up = 30\nboth_sides = true\n");
        let c = &parse(&text).expect("valid").streams[0].controls;
        assert_eq!((c.warm_up_s, c.both_sides), (Some(30.0), true));
        assert_eq!(c.duration_s, Some(10.0));
        assert_eq!(c.limit, Some(5000));
        assert_eq!((c.ceiling_pps, c.ceiling_mbps), (Some(20_000.0), Some(100.0)));
        assert_eq!(c.stall, StallPolicy::Shift);
        assert_eq!((c.cpu, c.fifo_priority), (Some(1), Some(50)));
        assert_eq!(c.wire_config.as_deref(), Some(Path::new("w.toml")));
        assert!(!c.topspeed && c.loops.is_none());
        let pcap = stream_with("topspeed = true\nloop = 3\n").replace("model = \"m\"", "pcap = \"p\"");
        let c = &parse(&pcap).expect("valid").streams[0].controls;
        assert!(c.topspeed);
        assert_eq!(c.loops, Some(3));
        assert_eq!(parse(&stream_with("")).unwrap().streams[0].controls, Controls::default());
    }

    #[test]
    fn bad_controls() {
        check_err(&stream_with("duration = 0\n"), 7, 12, "stream[\"s\"].duration");
        check_err(&stream_with("ceiling_pps = -1\n"), 7, 15, "stream[\"s\"].ceiling_pps");
        check_err(&stream_with("ceiling_mbps = nan\n"), 7, 16, "stream[\"s\"].ceiling_mbps");
        check_err(&stream_with("limit = 0\n"), 7, 9, "stream[\"s\"].limit");
        check_err(&stream_with("limit = -3\n"), 7, 9, "stream.limit");
        let msg = check_err(&stream_with("stall = \"wait\"\n"), 7, 9, "stream[\"s\"].stall");
        assert!(msg.contains("burst") && msg.contains("shift"), "{msg}");
        check_err(&stream_with("cpu = 4096\n"), 7, 7, "stream[\"s\"].cpu");
        check_err(&stream_with("fifo_priority = 0\n"), 7, 17, "stream[\"s\"].fifo_priority");
        check_err(&stream_with("fifo_priority = 100\n"), 7, 17, "stream[\"s\"].fifo_priority");
        let msg = check_err(&stream_with("loop = 2\n"), 7, 8, "stream[\"s\"].loop");
        assert!(msg.contains("pcap"), "{msg}");
        let pcap = stream_with("wire_config = \"w.toml\"\n").replace("model = \"m\"", "pcap = \"p\"");
        check_err(&pcap, 7, 15, "stream[\"s\"].wire_config");
        let pcap = stream_with("warm_up = 5\n").replace("model = \"m\"", "pcap = \"p\"");
        check_err(&pcap, 7, 11, "stream[\"s\"].warm_up");
        check_err(&stream_with("warm_up = -1\n"), 7, 11, "stream[\"s\"].warm_up");
        let pcap = stream_with("both_sides = true\n").replace("model = \"m\"", "pcap = \"p\"");
        check_err(&pcap, 7, 14, "stream[\"s\"].both_sides");
        let msg = check_err(&stream_with("pps = 10\ntopspeed = true\n"), 7, 7, "stream[\"s\"].pps");
        assert!(msg.contains("topspeed"), "{msg}");
        check_err(&stream_with("topspeed = 1\n"), 7, 12, "stream.topspeed");
    }

    #[test]
    fn bad_cidrs() {
        let cases = [
            ("10.0.0.0/33", "too long"),
            ("10.0.0.1/8", "did you mean 10.0.0.0/8"),
            ("fe80::/129", "too long"),
            ("banana/8", "not an IPv4 or IPv6 address"),
            ("10.0.0.0", "ADDRESS/LENGTH"),
            ("10.0.0.0/+8", "not a prefix length"),
            ("10.0.0.0/", "not a prefix length"),
        ];
        for (cidr, expected) in cases {
            let text =
                stream_with("").replace("\"10.0.0.0/8\"]", &format!("\"10.0.0.0/8\", \"{cidr}\"]"));
            let msg = check_err(&text, 6, 28, "stream[\"s\"].allowlist[1]");
            assert!(msg.contains(expected), "{cidr}: {msg}");
        }
    }

    #[test]
    fn empty_allowlist() {
        check_err(
            &stream_with("").replace("[\"10.0.0.0/8\"]", "[]"),
            6,
            13,
            "stream[\"s\"].allowlist",
        );
    }

    #[test]
    fn addresses_outside_allowlist() {
        let text = stream_with("[stream.addresses]\nserver_v4 = \"11.0.0.0/16\"\n");
        let msg = check_err(&text, 8, 13, "stream[\"s\"].addresses.server_v4");
        assert!(msg.contains("stream \"s\"") && msg.contains("allowlist"), "{msg}");
        // Wider than the allowed prefix.
        let text = stream_with("[stream.addresses]\nclient_v4 = \"10.0.0.0/7\"\n");
        check_err(&text, 8, 13, "stream[\"s\"].addresses.client_v4");
    }

    #[test]
    fn addresses_of_the_wrong_family() {
        let text = stream_with("[stream.addresses]\nclient_v4 = \"fd00::/64\"\n");
        let msg = check_err(&text, 8, 13, "stream[\"s\"].addresses.client_v4");
        assert!(msg.contains("IPv4"), "{msg}");
    }

    #[test]
    fn unknown_address_key() {
        check_err(
            &stream_with("[stream.addresses]\nclient = \"10.1.0.0/16\"\n"),
            8,
            1,
            "stream.addresses.client",
        );
    }

    #[test]
    fn multi_line_array_names_its_key() {
        let text = stream_with("")
            .replace("allowlist = [\"10.0.0.0/8\"]", "allowlist = [\n  \"10.0.0.0/8\",\n  3,\n]");
        check_err(&text, 8, 3, "stream.allowlist");
    }

    #[test]
    fn unreadable_file() {
        let err = Config::load(Path::new("/nonexistent/trafgend.toml")).unwrap_err();
        assert!(err.to_string().starts_with("/nonexistent/trafgend.toml: cannot read:"), "{err}");
    }

    #[test]
    fn cidr_containment() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(&"10.1.0.0/16".parse().unwrap()));
        assert!(net.contains(&net));
        assert!(!net.contains(&"0.0.0.0/0".parse().unwrap()));
        assert!(!net.contains(&"fd00::/8".parse().unwrap()));
        let all: Cidr = "::/0".parse().unwrap();
        assert!(all.contains(&"2001:db8::/32".parse().unwrap()));
        assert!(all.contains_addr("::1".parse().unwrap()));
        assert!(!all.contains_addr("127.0.0.1".parse().unwrap()));
        let host: Cidr = "2001:db8::1/128".parse().unwrap();
        assert_eq!(host.to_string(), "2001:db8::1/128");
        assert_eq!(host.prefix_len(), 128);
    }

    #[test]
    fn line_column_counts_characters() {
        let text = "a\nüé = 1\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 2), (2, 1));
        // Byte 7 is after "üé " (5 bytes), i.e. the 4th character.
        assert_eq!(line_column(text, 7), (2, 4));
        // Inside the 2-byte 'ü': moved back to its start.
        assert_eq!(line_column(text, 3), (2, 1));
        assert_eq!(line_column(text, 1000), (3, 1));
    }
}
