//! Ingestion driver: capture → flow → features for a list of files, streaming.
//!
//! This module owns the loop that reads records, decodes them, clamps timestamps that go
//! backwards, feeds the flow table, computes features and hands everything to an
//! [`Observer`] (the `inspect` summary, the CSV writer, later the model trainer). Each file is
//! its own capture: flows never span files. Memory is bounded by the live flows, never by
//! the file size. Policy on bad input lives here: a corrupt record stops with an error
//! unless `skip_bad`, which keeps what was read, counts the bad record and goes on.

use std::path::{Path, PathBuf};

use crate::capture::{self, CaptureError, CaptureReader, FileFormat, LinkType, Malformed, Packet};
use crate::features::{self, FlowFeatures, PacketFeatures, Rolling};
use crate::flow::{Assignment, Flow, FlowConfig, FlowStats, FlowTable, Prepared};

/// Records decoded ahead of the flow table, and how far ahead of its packet a flow is
/// prefetched (see the loop in `ingest_file`).
const BATCH: usize = 32;
const AHEAD: usize = 6;

/// What to do while ingesting.
#[derive(Clone, Debug, Default)]
pub struct IngestOptions {
    pub flow: FlowConfig,
    /// Keep going past corrupt records and unreadable files, counting them.
    pub skip_bad: bool,
    /// Compute per-packet features (rolling windows cost memory per live flow).
    pub packet_features: bool,
    /// Stop after this many packets in total.
    pub max_packets: Option<u64>,
}

/// Receives the data path's output. All methods have empty defaults.
pub trait Observer {
    fn file_start(&mut self, _path: &Path, _format: FileFormat, _link: LinkType) {}
    /// Every record, decoded; `assignment` is `None` for malformed frames (not in any flow).
    fn packet(&mut self, _p: &Packet, _assignment: Option<&Assignment>, _features: Option<&PacketFeatures>) {}
    fn flow(&mut self, _flow: &Flow<Rolling>, _features: &FlowFeatures) {}
    fn file_end(&mut self, _report: &FileReport) {}
}

/// Errors that stop ingestion.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
}

/// What happened to one file.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FileReport {
    pub path: PathBuf,
    /// `None` when the file could not be opened (skip_bad).
    pub format: Option<FileFormat>,
    pub link: Option<LinkType>,
    pub gzip: bool,
    pub packets: u64,
    pub wire_bytes: u64,
    pub first_ns: Option<i64>,
    pub last_ns: Option<i64>,
    /// Frames that could not be decoded (not in any flow), by reason.
    pub malformed: Vec<(Malformed, u64)>,
    /// Records whose timestamp is earlier than an earlier record's (treated as no time passing).
    pub ts_backwards: u64,
    pub first_backwards_index: Option<u64>,
    /// The error that ended this file early under `skip_bad`.
    pub bad: Option<String>,
    /// Damaged records skipped under `skip_bad` (reading went on after them).
    pub skipped_records: u64,
}

/// Totals over all files.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct IngestReport {
    pub files: Vec<FileReport>,
    pub flow_stats: FlowStats,
    pub packets: u64,
    /// Corrupt records / unreadable files skipped under `skip_bad`.
    pub bad_records: u64,
}

/// Runs the data path over `paths` in order.
pub fn ingest(paths: &[PathBuf], opts: &IngestOptions, obs: &mut impl Observer) -> Result<IngestReport, IngestError> {
    let mut table: FlowTable<Rolling> = FlowTable::new(&opts.flow);
    let mut report = IngestReport::default();
    for path in paths {
        if opts.max_packets.is_some_and(|m| report.packets >= m) {
            break;
        }
        let budget = opts.max_packets.map(|m| m - report.packets);
        let file = match ingest_file(path, opts, budget, &mut table, obs) {
            Ok(f) => f,
            Err(e) if opts.skip_bad => {
                tracing::warn!("skipping {}: {e}", path.display());
                report.bad_records += 1;
                FileReport::unreadable(path, e.to_string())
            }
            Err(e) => return Err(e.into()),
        };
        if file.bad.is_some() && file.format.is_some() {
            report.bad_records += 1;
        }
        report.bad_records += file.skipped_records;
        report.packets += file.packets;
        obs.file_end(&file);
        report.files.push(file);
    }
    report.flow_stats = table.stats().clone();
    Ok(report)
}

impl FileReport {
    fn unreadable(path: &Path, msg: String) -> FileReport {
        FileReport {
            path: path.to_path_buf(),
            format: None,
            link: None,
            gzip: false,
            packets: 0,
            wire_bytes: 0,
            first_ns: None,
            last_ns: None,
            malformed: Vec::new(),
            ts_backwards: 0,
            first_backwards_index: None,
            bad: Some(msg),
            skipped_records: 0,
        }
    }
}

fn ingest_file(
    path: &Path,
    opts: &IngestOptions,
    budget: Option<u64>,
    table: &mut FlowTable<Rolling>,
    obs: &mut impl Observer,
) -> Result<FileReport, CaptureError> {
    let mut reader = CaptureReader::open(path)?;
    let link = reader.link_type();
    obs.file_start(path, reader.format(), link);
    let mut rep = FileReport::unreadable(path, String::new());
    rep.bad = None;
    rep.format = Some(reader.format());
    rep.link = Some(link);
    rep.gzip = reader.is_gzip();
    let mut malformed = [0u64; 4];
    let mut clock = i64::MIN;
    // Records are decoded a batch ahead of the flow table so that the table can prefetch the
    // batch's flows: their cache misses overlap instead of stalling one packet at a time.
    let mut batch: Vec<(Packet, i64, Option<Prepared>)> = Vec::with_capacity(BATCH);
    loop {
        let mut stop = None;
        batch.clear();
        while batch.len() < BATCH {
            if budget.is_some_and(|b| rep.packets >= b) {
                stop = Some(Ok(()));
                break;
            }
            let rec = match reader.next_record() {
                Ok(Some(r)) => r,
                Ok(None) => {
                    stop = Some(Ok(()));
                    break;
                }
                Err(e) if opts.skip_bad && e.is_resumable() => {
                    tracing::warn!("{e}");
                    rep.skipped_records += 1;
                    continue;
                }
                Err(e) if opts.skip_bad && e.is_record_level() => {
                    tracing::warn!("{e}");
                    rep.bad = Some(e.to_string());
                    stop = Some(Ok(()));
                    break;
                }
                Err(e) => {
                    stop = Some(Err(e));
                    break;
                }
            };
            let p = capture::decode(link, rec.index, rec.ts_ns, rec.wire_len, rec.data);
            rep.packets += 1;
            rep.wire_bytes += u64::from(rec.wire_len);
            rep.first_ns.get_or_insert(rec.ts_ns);
            rep.last_ns = Some(rep.last_ns.map_or(rec.ts_ns, |l| l.max(rec.ts_ns)));
            if rec.ts_ns < clock {
                rep.ts_backwards += 1;
                rep.first_backwards_index.get_or_insert(rec.index);
            }
            clock = clock.max(rec.ts_ns);
            let prep = p.malformed.is_none().then(|| table.prepare(&p));
            batch.push((p, clock, prep));
        }
        // The flow of packet i + AHEAD is prefetched while packet i is accounted: far enough
        // ahead for the load to land, near enough not to flood the CPU's miss buffers.
        for (_, _, prep) in batch.iter().take(AHEAD) {
            prep.as_ref().map(|prep| table.prefetch_flow(prep));
        }
        for i in 0..batch.len() {
            if let Some((_, _, Some(prep))) = batch.get(i + AHEAD) {
                table.prefetch_flow(prep);
            }
            let (p, clock, prep) = &batch[i];
            let (p, clock, prep) = (p, *clock, *prep);
            let Some(prep) = prep else {
                malformed[p.malformed.map_or(0, |m| m as usize)] += 1;
                obs.packet(p, None, None);
                continue;
            };
            let (a, flow) = table.observe_prepared(p, prep, clock);
            if opts.packet_features {
                let pf = features::packet_features(p, &a, clock, flow);
                obs.packet(p, Some(&a), Some(&pf));
            } else {
                obs.packet(p, Some(&a), None);
            }
            for f in table.drain_finished() {
                obs.flow(f, &features::flow_features(f));
            }
        }
        match stop {
            None => {}
            Some(Ok(())) => break,
            Some(Err(e)) => return Err(e),
        }
    }
    table.finish_all();
    for f in table.drain_finished() {
        obs.flow(f, &features::flow_features(f));
    }
    if rep.ts_backwards > 0 {
        tracing::warn!(
            "{}: {} timestamps go backwards (first at packet #{}); treated as no time passing",
            path.display(),
            rep.ts_backwards,
            rep.first_backwards_index.unwrap_or(0)
        );
    }
    const REASONS: [Malformed; 4] =
        [Malformed::ShortLink, Malformed::BadIpHeader, Malformed::BadIpVersion, Malformed::BadTransport];
    rep.malformed = REASONS.iter().zip(malformed).filter(|(_, n)| *n > 0).map(|(r, n)| (*r, n)).collect();
    Ok(rep)
}
