//! End-to-end checks of the file sink: files read back with our reader (libpcap) and, where
//! installed, tshark and tcpdump; only whole records after Drop, disk full (tmpfs, as root)
//! and a file size limit (RLIMIT_FSIZE, any user).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;
use crate::capture::{CaptureReader, FileFormat};

const FORMATS: [OutputFormat; 2] = [OutputFormat::Pcap, OutputFormat::PcapNg];

fn ts(i: u64) -> i64 {
    1_700_000_000_123_456_789 + i as i64 * 1001
}

/// Frame `i`: 14..=1514 bytes (every length mod 4), a pattern that depends on `i`.
fn frame(i: u64) -> Vec<u8> {
    let len = 14 + (i * 397 % 1501) as usize;
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

/// Writes frame `i` as the wire stage does (header part, payload part); every third frame
/// in three parts with an empty one between.
fn write(sink: &mut FileSink, i: u64) -> Result<(), SinkError> {
    let f = frame(i);
    let (h, p) = f.split_at(f.len().min(54));
    if i % 3 == 0 {
        sink.write_frame(ts(i), &[h, &[], p])
    } else {
        sink.write_frame(ts(i), &[h, p])
    }
}

fn read_back(path: &Path) -> Vec<(i64, Vec<u8>)> {
    let mut r = CaptureReader::open(path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.dlt(), 1);
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().unwrap_or_else(|e| panic!("{e}")) {
        assert_eq!(rec.wire_len as usize, rec.data.len());
        out.push((rec.ts_ns, rec.data.to_vec()));
    }
    out
}

/// The file holds exactly frames `0..n`.
fn assert_holds(path: &Path, n: u64) {
    let got = read_back(path);
    assert_eq!(got.len() as u64, n, "{}", path.display());
    for (i, (t, data)) in got.iter().enumerate() {
        assert_eq!(*t, ts(i as u64), "frame {i} timestamp");
        assert!(*data == frame(i as u64), "frame {i} bytes differ");
    }
}

/// tshark and tcpdump (each if installed) read the file without error and see frames
/// `0..n` with their lengths and ns timestamps (tshark).
fn assert_tools_read(path: &Path, n: u64) {
    match Command::new("tshark").arg("-r").arg(path).args(["-T", "fields", "-e", "frame.len", "-e", "frame.time_epoch"]).output() {
        Err(_) => eprintln!("tshark not installed: skipping the tshark check"),
        Ok(out) => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "tshark -r {}: {:?}\n{}", path.display(), out.status, String::from_utf8_lossy(&out.stderr));
            let lines: Vec<&str> = stdout.lines().collect();
            assert_eq!(lines.len() as u64, n, "tshark frame count for {}", path.display());
            for (i, line) in lines.iter().enumerate() {
                let t = ts(i as u64);
                let want = format!("{}\t{}.{:09}", frame(i as u64).len(), t / 1_000_000_000, t % 1_000_000_000);
                assert_eq!(*line, want, "tshark, frame {i}");
            }
        }
    }
    // --count (tcpdump 4.99): "N packets" instead of one (or more) lines per packet
    match Command::new("tcpdump").arg("-r").arg(path).arg("--count").output() {
        Err(_) => eprintln!("tcpdump not installed: skipping the tcpdump check"),
        Ok(out) => {
            assert!(out.status.success(), "tcpdump -r {}: {:?}\n{}", path.display(), out.status, String::from_utf8_lossy(&out.stderr));
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(stdout.trim(), format!("{n} packets"), "tcpdump frame count");
        }
    }
}

#[test]
fn round_trip_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    // ~2.3 MB: several buffer flushes
    let n = 3000;
    for format in FORMATS {
        let path = dir.path().join(format!("rt.{}", format.name()));
        let mut sink = FileSink::create(&path, format, MAX_SNAPLEN).unwrap();
        for i in 0..n {
            write(&mut sink, i).unwrap();
        }
        assert_eq!(sink.frames(), n);
        let stats = sink.finish().unwrap();
        assert_eq!(stats.frames, n);
        assert_eq!(stats.bytes, std::fs::metadata(&path).unwrap().len());
        let r = CaptureReader::open(&path).unwrap();
        match format {
            OutputFormat::Pcap => {
                assert_eq!(r.format(), FileFormat::Pcap { nanos: true, big_endian: false });
                assert_eq!(r.snaplen(), MAX_SNAPLEN);
            }
            OutputFormat::PcapNg => assert_eq!(r.format(), FileFormat::PcapNg),
        }
        assert_holds(&path, n);
        assert_tools_read(&path, n);
    }
}

#[test]
fn empty_file_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    for format in FORMATS {
        let path = dir.path().join(format!("empty.{}", format.name()));
        let stats = FileSink::create(&path, format, 1514).unwrap().finish().unwrap();
        assert_eq!(stats.frames, 0);
        assert_holds(&path, 0);
        assert_tools_read(&path, 0);
    }
}

#[test]
fn drop_without_finish_keeps_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    for format in FORMATS {
        // 10 frames stay in the buffer; 2000 need a flush before the drop too
        for n in [10, 2000] {
            let path = dir.path().join(format!("drop{n}.{}", format.name()));
            let mut sink = FileSink::create(&path, format, 1514).unwrap();
            for i in 0..n {
                write(&mut sink, i).unwrap();
            }
            drop(sink);
            assert_holds(&path, n);
        }
    }
}

#[test]
fn refuses_long_frames_and_bad_timestamps_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    for format in FORMATS {
        let path = dir.path().join(format!("refuse.{}", format.name()));
        let mut sink = FileSink::create(&path, format, 1514).unwrap();
        write(&mut sink, 0).unwrap();
        let big = vec![0u8; 1000];
        let e = sink.write_frame(ts(1), &[&big, &big[..515]]).unwrap_err();
        assert!(matches!(e, SinkError::FrameTooLong { index: 1, len: 1515, snaplen: 1514, .. }), "{e}");
        assert!(e.to_string().starts_with(&format!("{}: ", path.display())), "{e}");
        let e = sink.write_frame(-1, &[&big]).unwrap_err();
        assert!(matches!(e, SinkError::Timestamp { ts_ns: -1, .. }), "{e}");
        let after_2106 = pcap_format::max_ts_ns(OutputFormat::Pcap) + 1;
        let r = sink.write_frame(after_2106, &[&big]);
        match format {
            OutputFormat::Pcap => assert!(matches!(r, Err(SinkError::Timestamp { .. })), "{r:?}"),
            OutputFormat::PcapNg => r.unwrap(),
        }
        drop(sink); // after a refused frame the sink goes on; the file is whole
        let want = if format == OutputFormat::PcapNg { 2 } else { 1 };
        assert_eq!(read_back(&path).len(), want);
    }
}

#[test]
fn unwritable_paths_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/out.pcap");
    for path in [missing.as_path(), dir.path()] {
        let e = FileSink::create(path, OutputFormat::Pcap, 1514).err().expect("must fail");
        assert!(matches!(e, SinkError::Create { .. }), "{e}");
        assert!(e.to_string().starts_with(&format!("{}: cannot create", path.display())), "{e}");
    }
    let e = FileSink::create(&dir.path().join("x.pcap"), OutputFormat::Pcap, 0).err().expect("snaplen 0");
    assert!(matches!(e, SinkError::Snaplen { snaplen: 0, .. }), "{e}");
    assert!(FileSink::create(&dir.path().join("y.pcap"), OutputFormat::Pcap, MAX_SNAPLEN + 1).is_err());
}

/// Writes frames until the sink fails; checks the error, that it stays failed, and that the
/// file holds exactly the frames the error reports. Returns that count.
fn fill_until_error(path: &Path, format: OutputFormat) -> (SinkError, u64) {
    let mut sink = FileSink::create(path, format, 1514).unwrap();
    let mut failure = None;
    for i in 0..200_000 {
        if let Err(e) = write(&mut sink, i) {
            failure = Some(e);
            break;
        }
    }
    let e = failure.expect("the sink never failed");
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("{}: ", path.display())), "{msg}");
    let frames = e.frames_in_file().unwrap_or_else(|| panic!("not a write error: {msg}"));
    assert!(frames > 0, "{msg}");
    assert!(msg.contains(&format!("{frames} whole frames")), "{msg}");
    assert_eq!(sink.frames(), frames);
    // stopped: every later call fails the same way and writes nothing
    let again = write(&mut sink, frames).unwrap_err();
    assert_eq!(again.to_string(), msg);
    assert_eq!(sink.finish().unwrap_err().to_string(), msg);
    let bytes = match &e {
        SinkError::DiskFull { bytes, .. } | SinkError::Write { bytes, .. } => *bytes,
        _ => unreachable!(),
    };
    assert_eq!(std::fs::metadata(path).unwrap().len(), bytes, "file length after the cut");
    assert_holds(path, frames);
    assert_tools_read(path, frames);
    (e, frames)
}

/// Unmounts on drop, whatever happens in the test.
struct Unmount(CString);

impl Drop for Unmount {
    fn drop(&mut self) {
        // SAFETY: a valid C string; MNT_DETACH so a busy mount still goes.
        unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
    }
}

#[test]
fn disk_full_leaves_whole_records() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: skipping the tmpfs disk-full test (the RLIMIT_FSIZE test covers the cut)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let target = CString::new(dir.path().as_os_str().as_bytes()).unwrap();
    // SAFETY: valid C strings; a fresh tmpfs over our own empty temp dir.
    let rc = unsafe {
        libc::mount(c"trafgen-sink-test".as_ptr(), target.as_ptr(), c"tmpfs".as_ptr(), 0, c"size=256k".as_ptr().cast())
    };
    if rc != 0 {
        eprintln!("cannot mount a tmpfs ({}): skipping the disk-full test", std::io::Error::last_os_error());
        return;
    }
    let _unmount = Unmount(target);
    for format in FORMATS {
        let path = dir.path().join(format!("full.{}", format.name()));
        let (e, frames) = fill_until_error(&path, format);
        assert!(matches!(e, SinkError::DiskFull { .. }), "{e}");
        assert!(e.to_string().contains("disk full (No space left on device"), "{e}");
        eprintln!("{format:?}: {frames} frames in 256 KiB; {e}");
        std::fs::remove_file(&path).unwrap();
    }
}

const FSIZE_ENV: &str = "TRAFGEN_SINK_FSIZE_DIR";
const FSIZE_LIMIT: u64 = 300_001;

/// Runs in a child process with RLIMIT_FSIZE set and SIGXFSZ ignored (see
/// `file_size_limit_leaves_whole_records`).
#[test]
#[ignore = "run by file_size_limit_leaves_whole_records in a child process"]
fn fsize_child() {
    let Some(dir) = std::env::var_os(FSIZE_ENV) else { return };
    for format in FORMATS {
        let path = PathBuf::from(&dir).join(format!("limit.{}", format.name()));
        let (e, frames) = fill_until_error(&path, format);
        match &e {
            SinkError::Write { source, .. } => assert_eq!(source.raw_os_error(), Some(libc::EFBIG), "{e}"),
            _ => panic!("expected EFBIG: {e}"),
        }
        println!("FRAMES {} {frames}", format.name());
    }
}

#[test]
fn file_size_limit_leaves_whole_records() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", "sink::tests::fsize_child", "--ignored", "--nocapture", "--test-threads=1"]).env(FSIZE_ENV, dir.path());
    // SAFETY: setrlimit and signal are async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: FSIZE_LIMIT, rlim_max: FSIZE_LIMIT };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child: {:?}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    for format in FORMATS {
        let tag = format!("FRAMES {} ", format.name());
        let frames: u64 = stdout
            .lines()
            .find_map(|l| l.find(&tag).map(|at| &l[at + tag.len()..]))
            .unwrap_or_else(|| panic!("child did not report {tag}:\n{stdout}"))
            .trim()
            .parse()
            .unwrap();
        // checked again here, outside the limit
        let path = dir.path().join(format!("limit.{}", format.name()));
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len <= FSIZE_LIMIT && len > FSIZE_LIMIT - 1600, "{len}");
        assert_holds(&path, frames);
    }
}

#[test]
fn format_from_path() {
    assert_eq!(OutputFormat::from_path(Path::new("out.pcapng")), OutputFormat::PcapNg);
    assert_eq!(OutputFormat::from_path(Path::new("/a/b.PCAPNG")), OutputFormat::PcapNg);
    assert_eq!(OutputFormat::from_path(Path::new("out.pcap")), OutputFormat::Pcap);
    assert_eq!(OutputFormat::from_path(Path::new("out.pcapng.gz")), OutputFormat::Pcap);
    assert_eq!(OutputFormat::from_path(Path::new("out")), OutputFormat::Pcap);
}

#[test]
fn errors_name_the_path() {
    let p = PathBuf::from("/x/out.pcap");
    let e = SinkError::DiskFull { path: p.clone(), frames: 7, bytes: 1234 };
    let msg = e.to_string();
    assert!(msg.starts_with("/x/out.pcap: disk full"), "{msg}");
    assert!(msg.contains("7 whole frames"), "{msg}");
    let e = SinkError::Timestamp { path: p, index: 3, ts_ns: -1, format: "pcap" };
    assert!(e.to_string().contains("before 1970, or after 2106"), "{e}");
}

/// Release-mode throughput check (not a test):
/// `cargo test --release --lib sink::tests::throughput -- --ignored --nocapture`;
/// `TRAFGEN_SINK_BENCH_DIR` (default `target`; `/dev/null` for the sink alone) and `TRAFGEN_SINK_BENCH_FRAMES` (5 M).
/// Prints frames/s and GB/s for both formats, next to plain 1 MiB writes of as many bytes.
#[test]
#[ignore = "throughput measurement; run in release"]
fn throughput() {
    use std::io::Write;
    use std::time::Instant;
    let dir = PathBuf::from(std::env::var_os("TRAFGEN_SINK_BENCH_DIR").unwrap_or("target".into()));
    let n: u64 = std::env::var("TRAFGEN_SINK_BENCH_FRAMES").ok().and_then(|s| s.parse().ok()).unwrap_or(5_000_000);
    // 1024 frames of 64..=1514 bytes, reused round-robin: the loop measures the sink only
    let pool: Vec<Vec<u8>> = (0..1024u64).map(|i| (0..64 + (i * 1450 / 1023) as usize).map(|j| (i as usize + j) as u8).collect()).collect();
    for format in FORMATS {
        // `/dev/null` measures the sink's own cost, without a file system
        let null = dir == Path::new("/dev/null");
        let path = if null { dir.clone() } else { dir.join(format!("sink-throughput.{}", format.name())) };
        let t0 = Instant::now();
        let mut sink = FileSink::create(&path, format, 1514).unwrap();
        let mut frame_bytes = 0u64;
        for i in 0..n {
            let f = &pool[(i % 1024) as usize];
            let (h, p) = f.split_at(54);
            sink.write_frame(ts(i), &[h, p]).unwrap();
            frame_bytes += f.len() as u64;
        }
        let stats = sink.finish().unwrap();
        let secs = t0.elapsed().as_secs_f64();
        if !null {
            std::fs::remove_file(&path).unwrap();
        }

        // the same number of bytes in plain 1 MiB writes: the file system's ceiling
        let chunk = vec![0x5au8; 1 << 20];
        let t1 = Instant::now();
        let mut f = std::fs::File::create(&path).unwrap();
        let mut left = stats.bytes;
        while left > 0 {
            let k = left.min(chunk.len() as u64) as usize;
            f.write_all(&chunk[..k]).unwrap();
            left -= k as u64;
        }
        drop(f);
        let raw = t1.elapsed().as_secs_f64();
        if !null {
            std::fs::remove_file(&path).unwrap();
        }
        println!(
            "{:7} {} frames, {:.2} GB file ({:.2} GB frame bytes) in {:.3} s: {:.2} M frames/s, {:.2} GB/s file; plain 1 MiB writes of the same bytes: {:.3} s, {:.2} GB/s",
            format.name(), stats.frames, stats.bytes as f64 / 1e9, frame_bytes as f64 / 1e9, secs,
            stats.frames as f64 / secs / 1e6, stats.bytes as f64 / secs / 1e9, raw, stats.bytes as f64 / raw / 1e9
        );
    }
}
