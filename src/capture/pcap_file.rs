//! Classic pcap records parsed straight out of a large read buffer.
//!
//! This module owns the record loop for classic pcap (µs and ns, either byte order), plain or
//! gunzipped: reads of 128 KiB fill a buffer, and every record is handed out as a slice
//! of it. libpcap reads the same files through stdio and copies each record once more into its
//! own buffer; skipping that copy is a fifth of the ingestion time. The rules are libpcap's
//! (`sf-pcap.c`), so both paths accept and reject the same files: the effective snapshot length
//! (0 or oversized means 262,144), caplen/len swapped in files older than format 2.3, the
//! FCS bits of the link-type field. Where libpcap silently cuts a record longer than the
//! snapshot length, this reader reports it (and can skip exactly that record). It knows
//! nothing about paths or record numbers; [`super::reader`] turns its errors into
//! [`super::CaptureError`]s.

use std::io::Read;

/// libpcap's `MAXIMUM_SNAPLEN`: the largest record it accepts for the link types we read.
pub const MAX_CAPLEN: u32 = 262_144;
/// Record header length of classic pcap.
pub const RECORD_HEADER_LEN: usize = 16;
/// File header length of classic pcap.
pub const FILE_HEADER_LEN: usize = 24;
/// Read buffer: room for the largest record after a partial one.
const BUF_LEN: usize = 2 * (MAX_CAPLEN as usize + RECORD_HEADER_LEN);
/// Bytes asked of the source per read: small enough to stay in L2, large enough that the
/// syscall is a few ns per record.
const READ_LEN: usize = 128 << 10;

/// What the 24-byte file header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileHeader {
    pub big_endian: bool,
    pub nanos: bool,
    pub version: (u16, u16),
    /// Snapshot length as written (0 allowed).
    pub snaplen: u32,
    /// Link type with the FCS bits masked off (LINKTYPE_ value).
    pub linktype: u32,
}

impl FileHeader {
    /// Parses a classic pcap header; `None` when the magic is not one this reader handles
    /// (the "modified" pcap formats with longer record headers stay with libpcap).
    pub fn parse(h: &[u8]) -> Option<FileHeader> {
        let h: &[u8; FILE_HEADER_LEN] = h.get(..FILE_HEADER_LEN)?.try_into().ok()?;
        let (big_endian, nanos) = match u32::from_le_bytes([h[0], h[1], h[2], h[3]]) {
            0xa1b2_c3d4 => (false, false),
            0xd4c3_b2a1 => (true, false),
            0xa1b2_3c4d => (false, true),
            0x4d3c_b2a1 => (true, true),
            _ => return None,
        };
        let u16_at = |i: usize| {
            if big_endian {
                u16::from_be_bytes([h[i], h[i + 1]])
            } else {
                u16::from_le_bytes([h[i], h[i + 1]])
            }
        };
        let u32_at = |i: usize| {
            let b = [h[i], h[i + 1], h[i + 2], h[i + 3]];
            if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        Some(FileHeader {
            big_endian,
            nanos,
            version: (u16_at(4), u16_at(6)),
            snaplen: u32_at(16),
            linktype: u32_at(20) & 0x03ff_ffff,
        })
    }

    /// The DLT value libpcap reports for this link type (LINKTYPE_RAW is DLT_RAW, 12, on Linux).
    pub fn dlt(&self) -> i32 {
        match self.linktype {
            101 => 12,
            t => t as i32,
        }
    }

    /// Why libpcap would refuse this header, if it would (`sf-pcap.c`: versions 2.0 to 2.4,
    /// and 543.0 of DG/UX tcpdump).
    pub fn refusal(&self) -> Option<String> {
        let (major, minor) = self.version;
        if major < 2 {
            Some(format!("archaic pcap savefile format {major}.{minor}"))
        } else if (major, minor) != (543, 0) && !(major == 2 && minor <= 4) {
            Some(format!("unsupported pcap savefile version {major}.{minor}"))
        } else {
            None
        }
    }
}

/// caplen/len order of old files (libpcap's `lengths_swapped`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lengths {
    InOrder,
    Swapped,
    /// Format 2.3: swapped only where caplen > len.
    MaybeSwapped,
}

/// One record, borrowed from the reader's buffer.
#[derive(Debug)]
pub struct RawRecord<'a> {
    /// Byte offset of the record header in the (decompressed) stream.
    pub offset: u64,
    pub ts_ns: i64,
    pub wire_len: u32,
    pub data: &'a [u8],
}

/// Why a record could not be read. `offset` is where its header starts.
#[derive(Debug)]
pub enum RecordError {
    /// The stream ends inside the record.
    Truncated {
        offset: u64,
        msg: String,
    },
    /// caplen beyond any link type's maximum: the stream is out of step; reading stops.
    CaplenTooLarge {
        offset: u64,
        caplen: u32,
    },
    /// caplen beyond the file's snapshot length: the record was skipped whole, reading may go on.
    OverSnaplen {
        offset: u64,
        caplen: u32,
    },
    Io {
        offset: u64,
        source: std::io::Error,
    },
}

impl RecordError {
    pub fn offset(&self) -> u64 {
        match self {
            RecordError::Truncated { offset, .. }
            | RecordError::CaplenTooLarge { offset, .. }
            | RecordError::OverSnaplen { offset, .. }
            | RecordError::Io { offset, .. } => *offset,
        }
    }
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Truncated { msg, .. } => f.write_str(msg),
            RecordError::CaplenTooLarge { caplen, .. } => {
                write!(f, "invalid packet capture length {caplen}, bigger than maximum of {MAX_CAPLEN}")
            }
            RecordError::OverSnaplen { caplen, .. } => {
                write!(f, "caplen {caplen} exceeds the snapshot length")
            }
            RecordError::Io { source, .. } => write!(f, "read error: {source}"),
        }
    }
}

/// Records of a classic pcap stream positioned just after its file header.
pub struct PcapRecords<R> {
    src: R,
    header: FileHeader,
    lengths: Lengths,
    /// libpcap's effective snapshot length.
    snap: u32,
    buf: Box<[u8]>,
    /// Unconsumed bytes are `buf[start..end]`; `buf[start]` is at stream offset `offset`.
    start: usize,
    end: usize,
    offset: u64,
    src_done: bool,
    /// Set after an error reading cannot recover from: the stream then reads as ended.
    failed: bool,
}

impl<R: Read> PcapRecords<R> {
    /// Reads from `src`, whose first [`FILE_HEADER_LEN`] bytes (`header`) were consumed.
    pub fn new(src: R, header: FileHeader) -> PcapRecords<R> {
        // DG/UX tcpdump writes 543.0 with the fields in the pre-2.3 order
        let lengths = match header.version {
            (maj, min) if maj < 2 || (maj == 2 && min < 3) || maj == 543 => Lengths::Swapped,
            (2, 3) => Lengths::MaybeSwapped,
            _ => Lengths::InOrder,
        };
        let snap = if header.snaplen == 0 || header.snaplen > MAX_CAPLEN { MAX_CAPLEN } else { header.snaplen };
        PcapRecords {
            src,
            header,
            lengths,
            snap,
            buf: vec![0u8; BUF_LEN].into_boxed_slice(),
            start: 0,
            end: 0,
            offset: FILE_HEADER_LEN as u64,
            src_done: false,
            failed: false,
        }
    }

    pub fn header(&self) -> &FileHeader {
        &self.header
    }

    /// Stream offset of the next record header.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Makes at least `need` bytes available (fewer only at the end of the stream). What is
    /// left is moved to the front first and reads ask for [`READ_LEN`] at most, so the
    /// bytes in use stay in the CPU's L2 cache between the kernel's copy and the parse.
    fn fill(&mut self, need: usize) -> std::io::Result<usize> {
        if self.end - self.start >= need || self.src_done {
            return Ok(self.end - self.start);
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        while self.end < need {
            let upto = self.buf.len().min(self.end + READ_LEN.max(need - self.end));
            match self.src.read(&mut self.buf[self.end..upto]) {
                Ok(0) => {
                    self.src_done = true;
                    break;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.end)
    }

    fn fail(&mut self, e: RecordError) -> Result<Option<RawRecord<'_>>, RecordError> {
        self.failed = true;
        Err(e)
    }

    /// The next record; `Ok(None)` at a clean end (the stream ends at a record boundary).
    pub fn next_record(&mut self) -> Result<Option<RawRecord<'_>>, RecordError> {
        if self.failed {
            return Ok(None);
        }
        let offset = self.offset;
        let have = match self.fill(RECORD_HEADER_LEN) {
            Ok(n) => n,
            Err(source) => return self.fail(RecordError::Io { offset, source }),
        };
        if have == 0 {
            return Ok(None);
        }
        if have < RECORD_HEADER_LEN {
            let msg = format!("truncated dump file; tried to read {RECORD_HEADER_LEN} header bytes, only got {have}");
            return self.fail(RecordError::Truncated { offset, msg });
        }
        let h = &self.buf[self.start..self.start + RECORD_HEADER_LEN];
        let word = |i: usize| {
            let b = [h[i], h[i + 1], h[i + 2], h[i + 3]];
            if self.header.big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let (sec, frac, mut caplen, mut len) = (word(0), word(4), word(8), word(12));
        match self.lengths {
            Lengths::InOrder => {}
            Lengths::Swapped => std::mem::swap(&mut caplen, &mut len),
            Lengths::MaybeSwapped if caplen > len => std::mem::swap(&mut caplen, &mut len),
            Lengths::MaybeSwapped => {}
        }
        if caplen > MAX_CAPLEN {
            return self.fail(RecordError::CaplenTooLarge { offset, caplen });
        }
        let total = RECORD_HEADER_LEN + caplen as usize;
        let have = match self.fill(total) {
            Ok(n) => n,
            Err(source) => return self.fail(RecordError::Io { offset, source }),
        };
        if have < total {
            let got = have - RECORD_HEADER_LEN;
            let msg = format!("truncated dump file; tried to read {caplen} captured bytes, only got {got}");
            return self.fail(RecordError::Truncated { offset, msg });
        }
        let data_start = self.start + RECORD_HEADER_LEN;
        self.start += total;
        self.offset += total as u64;
        if caplen > self.snap {
            return Err(RecordError::OverSnaplen { offset, caplen });
        }
        let ts_ns = i64::from(sec) * 1_000_000_000 + i64::from(frac) * if self.header.nanos { 1 } else { 1_000 };
        Ok(Some(RawRecord { offset, ts_ns, wire_len: len, data: &self.buf[data_start..data_start + caplen as usize] }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(
        big_endian: bool,
        nanos: bool,
        version: (u16, u16),
        snaplen: u32,
        records: &[(u32, u32, u32, &[u8])],
    ) -> Vec<u8> {
        let w32 = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let w16 = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut out = Vec::new();
        out.extend_from_slice(&w32(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
        out.extend_from_slice(&w16(version.0));
        out.extend_from_slice(&w16(version.1));
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&w32(snaplen));
        out.extend_from_slice(&w32(1 | 0x1000_0000)); // Ethernet with an FCS-length bit set
        for &(sec, frac, len, data) in records {
            out.extend_from_slice(&w32(sec));
            out.extend_from_slice(&w32(frac));
            out.extend_from_slice(&w32(data.len() as u32));
            out.extend_from_slice(&w32(len));
            out.extend_from_slice(data);
        }
        out
    }

    fn open(bytes: &[u8]) -> PcapRecords<&[u8]> {
        let h = FileHeader::parse(bytes).unwrap();
        PcapRecords::new(&bytes[FILE_HEADER_LEN..], h)
    }

    #[test]
    fn reads_both_byte_orders_and_precisions() {
        for (be, ns) in [(false, false), (true, false), (false, true), (true, true)] {
            let bytes = file(be, ns, (2, 4), 65535, &[(7, 5, 60, b"abcd"), (8, 0, 1514, b"xyz")]);
            let mut r = open(&bytes);
            assert_eq!((r.header().linktype, r.header().dlt()), (1, 1));
            let a = r.next_record().unwrap().unwrap();
            assert_eq!(
                (a.offset, a.ts_ns, a.wire_len, a.data),
                (24, 7_000_000_000 + if ns { 5 } else { 5_000 }, 60, &b"abcd"[..])
            );
            let b = r.next_record().unwrap().unwrap();
            assert_eq!((b.offset, b.ts_ns, b.wire_len, b.data), (24 + 20, 8_000_000_000, 1514, &b"xyz"[..]));
            assert!(r.next_record().unwrap().is_none());
        }
    }

    #[test]
    fn old_formats_swap_caplen_and_len() {
        // 2.2 always swapped: the caplen field holds len
        let mut bytes = file(false, false, (2, 2), 65535, &[(1, 0, 4, b"abcd")]);
        bytes[24 + 8..24 + 12].copy_from_slice(&60u32.to_le_bytes());
        bytes[24 + 12..24 + 16].copy_from_slice(&4u32.to_le_bytes());
        let r = open(&bytes).next_record().unwrap().unwrap().wire_len;
        assert_eq!(r, 60);
        // DG/UX's 543.0 too (the pcap_differential fuzz target found we read it in order)
        bytes[4..8].copy_from_slice(&[0x1f, 0x02, 0, 0]);
        let mut records = open(&bytes);
        let r = records.next_record().unwrap().unwrap();
        assert_eq!((r.wire_len, r.data), (60, &b"abcd"[..]));
    }

    #[test]
    fn truncation_and_oversize_are_errors_with_offsets() {
        let bytes = file(false, false, (2, 4), 100, &[(1, 0, 4, b"abcd"), (2, 0, 200, &[0u8; 200]), (3, 0, 2, b"ok")]);
        let mut r = open(&bytes);
        assert!(r.next_record().unwrap().is_some());
        // longer than the snapshot length: skipped whole, reading goes on
        assert!(matches!(r.next_record(), Err(RecordError::OverSnaplen { offset: 44, caplen: 200 })));
        assert_eq!(r.next_record().unwrap().unwrap().data, b"ok");
        for cut in [44 + 3, 44 + 16 + 10] {
            let mut r = open(&bytes[..cut]);
            r.next_record().unwrap();
            let e = r.next_record().unwrap_err();
            assert!(matches!(e, RecordError::Truncated { offset: 44, .. }), "{e}");
            assert!(r.next_record().unwrap().is_none(), "a failed stream reads as ended");
        }
        let mut huge = file(false, false, (2, 4), 0, &[(1, 0, 4, b"abcd")]);
        huge[24 + 8..24 + 12].copy_from_slice(&(MAX_CAPLEN + 1).to_le_bytes());
        assert!(matches!(open(&huge).next_record(), Err(RecordError::CaplenTooLarge { offset: 24, .. })));
    }

    #[test]
    fn versions_libpcap_refuses_are_refused() {
        let version = |v| FileHeader { version: v, ..FileHeader::parse(&file(false, false, (2, 4), 0, &[])).unwrap() };
        for ok in [(2, 0), (2, 3), (2, 4), (543, 0)] {
            assert_eq!(version(ok).refusal(), None, "{ok:?}");
        }
        // 2.1278 came from the pcap_differential fuzz target: libpcap refused it, we read it
        for bad in [(1, 0), (0, 0), (2, 5), (2, 1278), (3, 0), (543, 1)] {
            assert!(version(bad).refusal().is_some(), "{bad:?}");
        }
    }

    #[test]
    fn records_straddling_buffer_refills_come_out_whole() {
        // records of varying size that cross the 1 MiB buffer boundary many times, read
        // through a source that returns a few bytes at a time
        struct Dribble<'a>(&'a [u8], usize);
        impl Read for Dribble<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                self.1 = (self.1 * 7 + 3) % 70_001;
                let n = self.1.min(out.len()).min(self.0.len());
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let payloads: Vec<Vec<u8>> = (0..3000u32).map(|i| vec![(i % 251) as u8; (i as usize * 37) % 9000]).collect();
        let recs: Vec<(u32, u32, u32, &[u8])> =
            payloads.iter().enumerate().map(|(i, p)| (i as u32, 0, p.len() as u32, p.as_slice())).collect();
        let bytes = file(false, true, (2, 4), 0, &recs);
        let mut r = PcapRecords::new(Dribble(&bytes[FILE_HEADER_LEN..], 1), FileHeader::parse(&bytes).unwrap());
        for p in &payloads {
            assert_eq!(r.next_record().unwrap().unwrap().data, p.as_slice());
        }
        assert!(r.next_record().unwrap().is_none());
        assert_eq!(r.offset(), bytes.len() as u64);
    }
}
