//! The bytes of the capture formats the sink writes: file headers and record framing.
//!
//! This module owns the layout of classic pcap with nanosecond timestamps (magic 0xa1b23c4d,
//! version 2.4, little-endian) and of pcapng (Section Header Block, one Interface Description
//! Block with `if_tsresol` = 9, Enhanced Packet Blocks with 64-bit nanosecond timestamps, data
//! padded to 4 bytes, block total length at both ends). It appends into a caller's buffer and
//! allocates nothing; it does not do I/O nor check lengths against the snaplen (see
//! [`super::file`]).

use super::OutputFormat;

/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u16 = 1;

const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;
const PCAP_HEADER_LEN: usize = 24;
const PCAP_RECORD_HEADER_LEN: usize = 16;

const SHB_TYPE: u32 = 0x0a0d_0d0a;
const IDB_TYPE: u32 = 0x0000_0001;
const EPB_TYPE: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
const OPT_ENDOFOPT: u16 = 0;
const SHB_USERAPPL: u16 = 4;
const IF_TSRESOL: u16 = 9;
/// EPB without data: type, length, interface id, ts high, ts low, caplen, origlen, length.
const EPB_FIXED_LEN: usize = 32;

const USERAPPL: &str = concat!("trafgen ", env!("CARGO_PKG_VERSION"));

/// Bytes of padding that bring `len` to a multiple of 4.
pub const fn pad4(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// The largest timestamp (ns since 1970) a record of `format` can hold.
pub fn max_ts_ns(format: OutputFormat) -> i64 {
    match format {
        // 32-bit unsigned seconds
        OutputFormat::Pcap => (i64::from(u32::MAX) + 1) * 1_000_000_000 - 1,
        // 64-bit unsigned ns: any non-negative i64
        OutputFormat::PcapNg => i64::MAX,
    }
}

/// Bytes of the file header (pcap header, or pcapng SHB + IDB).
pub fn file_header_len(format: OutputFormat) -> usize {
    match format {
        OutputFormat::Pcap => PCAP_HEADER_LEN,
        OutputFormat::PcapNg => shb_len() + IDB_LEN,
    }
}

/// Bytes of one record holding a frame of `caplen` bytes.
pub const fn record_len(format: OutputFormat, caplen: usize) -> usize {
    match format {
        OutputFormat::Pcap => PCAP_RECORD_HEADER_LEN + caplen,
        OutputFormat::PcapNg => EPB_FIXED_LEN + caplen + pad4(caplen),
    }
}

/// Appends the file header for an Ethernet capture with `snaplen`.
pub fn put_file_header(out: &mut Vec<u8>, format: OutputFormat, snaplen: u32) {
    match format {
        OutputFormat::Pcap => {
            put32(out, PCAP_MAGIC_NS);
            put16(out, 2); // version major
            put16(out, 4); // version minor
            put32(out, 0); // thiszone (reserved)
            put32(out, 0); // sigfigs (reserved)
            put32(out, snaplen);
            put32(out, u32::from(LINKTYPE_ETHERNET));
        }
        OutputFormat::PcapNg => {
            let shb = shb_len() as u32;
            put32(out, SHB_TYPE);
            put32(out, shb);
            put32(out, BYTE_ORDER_MAGIC);
            put16(out, 1); // major
            put16(out, 0); // minor
            out.extend_from_slice(&(-1i64).to_le_bytes()); // section length: not given
            put_option(out, SHB_USERAPPL, USERAPPL.as_bytes());
            put_option(out, OPT_ENDOFOPT, &[]);
            put32(out, shb);

            put32(out, IDB_TYPE);
            put32(out, IDB_LEN as u32);
            put16(out, LINKTYPE_ETHERNET);
            put16(out, 0); // reserved
            put32(out, snaplen);
            put_option(out, IF_TSRESOL, &[9]); // 10^-9 s
            put_option(out, OPT_ENDOFOPT, &[]);
            put32(out, IDB_LEN as u32);
        }
    }
}

/// Appends what comes before the frame bytes of a record: `ts_ns` must lie in
/// `0..=max_ts_ns(format)` and `caplen` fit the snaplen (the caller checks both).
pub fn put_record_header(out: &mut Vec<u8>, format: OutputFormat, ts_ns: u64, caplen: u32) {
    match format {
        OutputFormat::Pcap => {
            put32(out, (ts_ns / 1_000_000_000) as u32);
            put32(out, (ts_ns % 1_000_000_000) as u32);
            put32(out, caplen);
            put32(out, caplen); // original length: frames are never truncated
        }
        OutputFormat::PcapNg => {
            let total = record_len(format, caplen as usize) as u32;
            put32(out, EPB_TYPE);
            put32(out, total);
            put32(out, 0); // interface id
            put32(out, (ts_ns >> 32) as u32);
            put32(out, ts_ns as u32);
            put32(out, caplen);
            put32(out, caplen);
        }
    }
}

/// Appends what comes after the frame bytes of a record (pcapng: padding and the trailing
/// block length; pcap: nothing).
pub fn put_record_trailer(out: &mut Vec<u8>, format: OutputFormat, caplen: u32) {
    if format == OutputFormat::PcapNg {
        out.extend_from_slice(&[0u8; 3][..pad4(caplen as usize)]);
        put32(out, record_len(format, caplen as usize) as u32);
    }
}

/// IDB: 16 fixed + if_tsresol (4 + 1 + 3 padding) + opt_endofopt (4) + trailing length (4).
const IDB_LEN: usize = 16 + 8 + 4 + 4;

const fn shb_len() -> usize {
    let n = USERAPPL.len();
    // 24 fixed + shb_userappl + opt_endofopt + trailing length
    24 + 4 + n + (4 - n % 4) % 4 + 4 + 4
}

fn put_option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    put16(out, code);
    put16(out, value.len() as u16);
    out.extend_from_slice(value);
    out.extend_from_slice(&[0u8; 3][..pad4(value.len())]);
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn pcap_header_bytes() {
        let mut b = Vec::new();
        put_file_header(&mut b, OutputFormat::Pcap, 262_144);
        assert_eq!(b.len(), file_header_len(OutputFormat::Pcap));
        assert_eq!(&b[..8], &[0x4d, 0x3c, 0xb2, 0xa1, 2, 0, 4, 0]);
        assert_eq!(u32_at(&b, 16), 262_144);
        assert_eq!(u32_at(&b, 20), 1);
    }

    #[test]
    fn pcap_record_splits_seconds_and_nanoseconds() {
        let mut b = Vec::new();
        put_record_header(&mut b, OutputFormat::Pcap, 1_700_000_000_123_456_789, 60);
        assert_eq!(b.len(), 16);
        assert_eq!(u32_at(&b, 0), 1_700_000_000);
        assert_eq!(u32_at(&b, 4), 123_456_789);
        assert_eq!((u32_at(&b, 8), u32_at(&b, 12)), (60, 60));
        assert_eq!(max_ts_ns(OutputFormat::Pcap) / 1_000_000_000, i64::from(u32::MAX));
    }

    #[test]
    fn pcapng_blocks_have_matching_lengths_and_alignment() {
        let mut b = Vec::new();
        put_file_header(&mut b, OutputFormat::PcapNg, 1514);
        assert_eq!(b.len(), file_header_len(OutputFormat::PcapNg));
        let shb = u32_at(&b, 4) as usize;
        assert_eq!(u32_at(&b, 0), SHB_TYPE);
        assert_eq!(u32_at(&b, 8), BYTE_ORDER_MAGIC);
        assert_eq!(u32_at(&b, shb - 4) as usize, shb);
        assert_eq!(shb % 4, 0);
        let idb = &b[shb..];
        assert_eq!(u32_at(idb, 0), IDB_TYPE);
        assert_eq!(u32_at(idb, 4) as usize, idb.len());
        assert_eq!(u32_at(idb, idb.len() - 4) as usize, idb.len());
        assert_eq!(u32_at(idb, 8), 1); // linktype 1, reserved 0
        assert_eq!(u32_at(idb, 12), 1514);
        assert_eq!(&idb[16..21], &[9, 0, 1, 0, 9]); // if_tsresol = 9

        for caplen in [0u32, 1, 2, 3, 4, 5, 60, 1514] {
            let mut r = Vec::new();
            put_record_header(&mut r, OutputFormat::PcapNg, (7u64 << 32) | 5, caplen);
            r.resize(r.len() + caplen as usize, 0xee);
            put_record_trailer(&mut r, OutputFormat::PcapNg, caplen);
            assert_eq!(r.len(), record_len(OutputFormat::PcapNg, caplen as usize));
            assert_eq!(r.len() % 4, 0, "caplen {caplen}");
            assert_eq!(u32_at(&r, 4) as usize, r.len());
            assert_eq!(u32_at(&r, r.len() - 4) as usize, r.len());
            assert_eq!((u32_at(&r, 12), u32_at(&r, 16)), (7, 5));
            assert_eq!((u32_at(&r, 20), u32_at(&r, 24)), (caplen, caplen));
        }
    }
}
