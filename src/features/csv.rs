//! CSV form of the feature tables (`packets.csv`, `flows.csv`), written streaming.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::extract::{FlowFeatures, PacketFeatures};

/// Failure to write a feature table.
#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot write feature table: {source}")]
pub struct CsvError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

pub const PACKET_HEADER: &str = "flow_id,kind,position,ts_ns,size,header_len,payload_len,direction,tcp_flags,time_diff_s,log_time_diff,rate_bytes_1s,rate_pkts_1s,rate_bytes_60s,rate_pkts_60s";
pub const FLOW_HEADER: &str = "flow_id,kind,ip_version,ip_proto,app,client_port,server_port,start_ns,duration_s,gap_s,packets_fwd,packets_bwd,bytes_fwd,bytes_bwd,payload_fwd,payload_bwd,fragments,mid_stream,handshake,end";

/// Writes `packets.csv` and `flows.csv` into a directory.
pub struct FeatureCsv {
    packets: BufWriter<File>,
    flows: BufWriter<File>,
    packets_path: PathBuf,
    flows_path: PathBuf,
}

impl FeatureCsv {
    pub fn create(dir: &Path) -> Result<FeatureCsv, CsvError> {
        std::fs::create_dir_all(dir).map_err(|source| CsvError { path: dir.to_path_buf(), source })?;
        let open = |name: &str, header: &str| -> Result<(BufWriter<File>, PathBuf), CsvError> {
            let path = dir.join(name);
            let f = File::create(&path).map_err(|source| CsvError { path: path.clone(), source })?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            writeln!(w, "{header}").map_err(|source| CsvError { path: path.clone(), source })?;
            Ok((w, path))
        };
        let (packets, packets_path) = open("packets.csv", PACKET_HEADER)?;
        let (flows, flows_path) = open("flows.csv", FLOW_HEADER)?;
        Ok(FeatureCsv { packets, flows, packets_path, flows_path })
    }

    pub fn packet(&mut self, r: &PacketFeatures) -> Result<(), CsvError> {
        writeln!(
            self.packets,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.flow_id, r.kind.name(), r.position, r.ts_ns, r.size, r.header_len, r.payload_len, r.direction,
            r.tcp_flags, r.time_diff_s, r.log_time_diff, r.rate_bytes_1s, r.rate_pkts_1s, r.rate_bytes_60s,
            r.rate_pkts_60s
        )
        .map_err(|source| CsvError { path: self.packets_path.clone(), source })
    }

    pub fn flow(&mut self, r: &FlowFeatures) -> Result<(), CsvError> {
        writeln!(
            self.flows,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.flow_id, r.kind.name(), r.ip_version, r.ip_proto, r.app.name(), r.client_port, r.server_port,
            r.start_ns, r.duration_s, r.gap_s.map(|g| g.to_string()).unwrap_or_default(), r.packets_fwd,
            r.packets_bwd, r.bytes_fwd, r.bytes_bwd, r.payload_fwd, r.payload_bwd, r.fragments,
            r.mid_stream as u8, r.handshake as u8, r.end.name()
        )
        .map_err(|source| CsvError { path: self.flows_path.clone(), source })
    }

    /// Flushes both files; errors (e.g. disk full) name the file.
    pub fn finish(mut self) -> Result<(), CsvError> {
        self.packets.flush().map_err(|source| CsvError { path: self.packets_path.clone(), source })?;
        self.flows.flush().map_err(|source| CsvError { path: self.flows_path.clone(), source })
    }
}
