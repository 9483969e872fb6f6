//! Capture ingestion: the first stage of the data path.
//!
//! This module owns reading capture files (pcap µs/ns, pcapng, gzip-compressed: [`reader`];
//! classic pcap parsed in [`pcap_file`], pcapng by libpcap), stripping the link layer of every supported link type ([`link`]) and decoding
//! each frame into a compact, allocation-free [`Packet`] with etherparse ([`decode`]).
//! It does not group packets into flows (that is [`crate::flow`]) nor compute features.

pub mod decode;
pub mod error;
pub mod link;
pub mod pcap_file;
pub mod reader;

pub use decode::{decode, Fragment, IcmpInfo, Malformed, NetLayer, Packet, TcpFlags, TcpInfo, Transport};
pub use error::CaptureError;
pub use link::LinkType;
pub use reader::{CaptureReader, FileFormat, Record};
