//! Splitting one capture by time into a training part and a held-out part.
//!
//! This module owns [`split_capture`]: the records of a capture whose time (the running
//! maximum of timestamps, so a timestamp going backwards never sends a record back across
//! the cut) lies before `first + f · span` go to the training file, the others to the
//! held-out file. Each record lands in exactly one file, in its original order, with its
//! captured bytes, captured length and original length unchanged; the timestamps are kept at
//! the input's resolution (µs pcap stays µs; ns pcap and pcapng become ns pcap). Both files
//! are classic pcap with the input's link type and snaplen. The held-out span (cut, last
//! timestamp) is returned, so that a synthetic capture can be made for the same period.
//!
//! It writes its own pcap records rather than through [`crate::sink::FileSink`] (Ethernet
//! only, original length = captured length) or libpcap's dump files (fixed snaplen 65,535):
//! both would change records of some inputs. It does not summarise or compare (see
//! [`super::evaluation`]).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::capture::{CaptureReader, FileFormat};

use super::EvalError;

const NS: i64 = 1_000_000_000;

/// The held-out period: from the cut to the last timestamp of the capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HeldOutSpan {
    /// ns since the Unix epoch.
    pub start_ns: i64,
    pub duration_ns: i64,
}

impl HeldOutSpan {
    pub fn duration_s(&self) -> f64 {
        self.duration_ns as f64 / NS as f64
    }
}

/// What [`split_capture`] wrote.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Split {
    pub input: PathBuf,
    pub fraction: f64,
    /// The first part (for training, and the "floor" arm).
    pub train: PathBuf,
    pub held_out: PathBuf,
    pub train_records: u64,
    pub held_out_records: u64,
    pub held_out_span: HeldOutSpan,
}

/// Splits `input` at fraction `fraction` (0 < f < 1) of its time span into
/// `out_dir/<name>.train.pcap` and `out_dir/<name>.heldout.pcap` (see the module doc). Reads
/// the input twice (span, then copy). Errors name the file: unreadable input, a capture with
/// no records or all records at one instant (no span to split), an unwritable output.
pub fn split_capture(input: &Path, fraction: f64, out_dir: &Path) -> Result<Split, EvalError> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(EvalError::Fraction(fraction));
    }
    let (first, last) = {
        let mut r = CaptureReader::open(input)?;
        let mut span: Option<(i64, i64)> = None;
        while let Some(rec) = r.next_record()? {
            span = Some(span.map_or((rec.ts_ns, rec.ts_ns), |(f, l)| (f, l.max(rec.ts_ns))));
        }
        span.ok_or_else(|| EvalError::NothingToSplit { path: input.to_path_buf(), why: "it holds no packets".into() })?
    };
    if last <= first {
        return Err(EvalError::NothingToSplit {
            path: input.to_path_buf(),
            why: "its packets do not span any time (every timestamp equals the first)".into(),
        });
    }
    // at least 1 ns into the span (the first record trains), at most its end (the last is held out)
    let cut = first + ((fraction * (last - first) as f64).round() as i64).clamp(1, last - first);

    let mut reader = CaptureReader::open(input)?;
    let nanos = !matches!(reader.format(), FileFormat::Pcap { nanos: false, .. });
    let linktype = linktype_of_dlt(reader.dlt());
    let snaplen = match reader.snaplen() {
        0 => crate::sink::MAX_SNAPLEN,
        s => s,
    };
    let name = base_name(input);
    let train_path = out_dir.join(format!("{name}.train.pcap"));
    let held_path = out_dir.join(format!("{name}.heldout.pcap"));
    let mut train = PcapCopy::create(&train_path, linktype, snaplen, nanos)?;
    let mut held = PcapCopy::create(&held_path, linktype, snaplen, nanos)?;
    let mut clock = i64::MIN;
    while let Some(rec) = reader.next_record()? {
        clock = clock.max(rec.ts_ns);
        let out = if clock < cut { &mut train } else { &mut held };
        out.write(rec.ts_ns, rec.wire_len, rec.data)?;
    }
    Ok(Split {
        input: input.to_path_buf(),
        fraction,
        train_records: train.finish()?,
        held_out_records: held.finish()?,
        train: train_path,
        held_out: held_path,
        held_out_span: HeldOutSpan { start_ns: cut, duration_ns: last - cut },
    })
}

/// The file name without directory and capture extensions (`a.pcap.gz` → `a`).
fn base_name(p: &Path) -> String {
    let mut name = p.file_name().map_or_else(|| "capture".to_string(), |n| n.to_string_lossy().into_owned());
    for ext in [".gz", ".pcapng", ".pcap", ".cap"] {
        if name.len() > ext.len() && name.to_ascii_lowercase().ends_with(ext) {
            name.truncate(name.len() - ext.len());
        }
    }
    name
}

/// The LINKTYPE_ value to write for a DLT_ value libpcap reported (they differ only for raw IP).
fn linktype_of_dlt(dlt: i32) -> u32 {
    match dlt {
        12 | 14 => 101,
        d => d as u32,
    }
}

/// A classic little-endian pcap file written record by record.
struct PcapCopy {
    out: BufWriter<File>,
    path: PathBuf,
    nanos: bool,
    records: u64,
}

impl PcapCopy {
    fn create(path: &Path, linktype: u32, snaplen: u32, nanos: bool) -> Result<PcapCopy, EvalError> {
        let file = File::create(path).map_err(|source| EvalError::Write { path: path.to_path_buf(), source })?;
        let mut c = PcapCopy { out: BufWriter::with_capacity(1 << 20, file), path: path.to_path_buf(), nanos, records: 0 };
        let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&magic.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&[0; 8]); // thiszone, sigfigs
        h.extend_from_slice(&snaplen.to_le_bytes());
        h.extend_from_slice(&linktype.to_le_bytes());
        c.put(&h)?;
        Ok(c)
    }

    fn write(&mut self, ts_ns: i64, wire_len: u32, data: &[u8]) -> Result<(), EvalError> {
        let secs = u32::try_from(ts_ns.div_euclid(NS)).map_err(|_| EvalError::Timestamp {
            path: self.path.clone(),
            index: self.records,
            ts_ns,
        })?;
        let frac = ts_ns.rem_euclid(NS) as u32;
        let frac = if self.nanos { frac } else { frac / 1000 };
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&secs.to_le_bytes());
        h[4..8].copy_from_slice(&frac.to_le_bytes());
        h[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&wire_len.to_le_bytes());
        self.put(&h)?;
        self.put(data)?;
        self.records += 1;
        Ok(())
    }

    fn put(&mut self, b: &[u8]) -> Result<(), EvalError> {
        self.out.write_all(b).map_err(|source| EvalError::Write { path: self.path.clone(), source })
    }

    fn finish(mut self) -> Result<u64, EvalError> {
        self.out.flush().map_err(|source| EvalError::Write { path: self.path.clone(), source })?;
        Ok(self.records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    const T0: i64 = 1_700_000_000 * NS;

    fn records(p: &Path) -> Vec<(i64, u32, Vec<u8>)> {
        let mut r = CaptureReader::open(p).unwrap();
        let mut v = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            v.push((rec.ts_ns, rec.wire_len, rec.data.to_vec()));
        }
        v
    }

    #[test]
    fn every_record_lands_once_in_order_and_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.pcap");
        let frames = fixture::demo_mix(20, T0);
        let (first, last) = (frames[0].0, frames.last().unwrap().0);
        fixture::write_pcap(&input, frames).unwrap();
        let s = split_capture(&input, 0.5, dir.path()).unwrap();
        assert_eq!(s.train, dir.path().join("in.train.pcap"));
        let all = records(&input);
        let (a, b) = (records(&s.train), records(&s.held_out));
        assert_eq!((s.train_records, s.held_out_records), (a.len() as u64, b.len() as u64));
        assert!(!a.is_empty() && !b.is_empty());
        assert_eq!([a.clone(), b.clone()].concat(), all);
        let cut = first + (last - first) / 2;
        assert_eq!(s.held_out_span, HeldOutSpan { start_ns: cut, duration_ns: last - cut });
        assert!(a.iter().all(|r| r.0 < cut) && b.iter().all(|r| r.0 >= cut));
        // libpcap wrote the input in the same layout: the two parts are its bytes, cut in two
        let bytes = std::fs::read(&input).unwrap();
        let (ta, tb) = (std::fs::read(&s.train).unwrap(), std::fs::read(&s.held_out).unwrap());
        assert_eq!(ta[..24], bytes[..24]);
        assert_eq!([&ta[..], &tb[24..]].concat(), bytes);
    }

    #[test]
    fn microsecond_files_stay_microsecond_and_truncated_records_keep_their_lengths() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("us.pcap");
        // a hand-made µs pcap, snaplen 96, link type raw IP (101); the second record was cut
        let mut f = Vec::new();
        for w in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 96, 101] {
            f.extend_from_slice(&w.to_le_bytes());
        }
        let ip = |len: u16| {
            let mut p = vec![0x45, 0, (len >> 8) as u8, len as u8, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
            p.extend_from_slice(&[0x30, 0x39, 0, 53, ((len - 20) >> 8) as u8, (len - 20) as u8, 0, 0]);
            p.resize(usize::from(len).min(96), 0xab);
            p
        };
        for (sec, usec, len) in [(100u32, 5u32, 60u16), (101, 7, 400), (102, 9, 60)] {
            let data = ip(len);
            for w in [sec, usec, data.len() as u32, u32::from(len)] {
                f.extend_from_slice(&w.to_le_bytes());
            }
            f.extend_from_slice(&data);
        }
        std::fs::write(&input, &f).unwrap();
        let s = split_capture(&input, 0.5, dir.path()).unwrap();
        assert_eq!((s.train_records, s.held_out_records), (1, 2));
        let (ta, tb) = (std::fs::read(&s.train).unwrap(), std::fs::read(&s.held_out).unwrap());
        assert_eq!([&ta[..], &tb[24..]].concat(), f, "same header, same records, byte for byte");
    }

    #[test]
    fn bad_inputs_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one.pcap");
        fixture::write_pcap(&one, fixture::icmp_echo([10, 0, 0, 1], [10, 0, 0, 2], 1, T0).into_iter().take(1)).unwrap();
        for f in [0.0, 1.0, -0.5, f64::NAN] {
            assert!(matches!(split_capture(&one, f, dir.path()), Err(EvalError::Fraction(_))), "{f}");
        }
        let e = split_capture(&one, 0.5, dir.path()).unwrap_err();
        assert!(e.to_string().contains("one.pcap") && e.to_string().contains("span"), "{e}");
        let missing = dir.path().join("missing.pcap");
        let e = split_capture(&missing, 0.5, dir.path()).unwrap_err();
        assert!(e.to_string().contains("missing.pcap"), "{e}");
        let good = dir.path().join("good.pcap");
        fixture::write_pcap(&good, fixture::demo_mix(2, T0)).unwrap();
        let e = split_capture(&good, 0.5, &dir.path().join("no/such/dir")).unwrap_err();
        assert!(e.to_string().contains("good.train.pcap"), "{e}");
    }
}
