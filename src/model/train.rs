//! Training all three levels from captures: ingestion → features → VAE → latent GMM →
//! per-kind flow LSTMs → aggregate model, with a held-out split of flows for early stopping.
//! Everything random is seeded: the same data, seed and device give the same model on CPU
//! (on the same kind of CPU: libtorch's kernels round differently across CPU types).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use tch::{Device, Kind, Tensor};

use super::aggregate::Aggregate;
use super::dataset::{self, Dataset, InputFile, PACKET_DIM, PACKET_FEATURES};
use super::flow_lstm::{FlowLstm, LstmShape};
use super::gmm::{Gmm, GmmError, GmmFitOptions};
use super::manifest::{AggregateLevel, Features, FlowLevel, KindCounts, Manifest, PacketLevel, TrainingSummary, FORMAT_VERSION};
use super::scaler::Scaler;
use super::payload_support::PayloadSupport;
use super::component_gaps::ComponentGaps;
use super::gap_support::GapSupport;
use super::tcp_heads::TcpHeads;
use super::vae::{TrainSettings, Vae, VaeShape};
use super::Model;
use crate::flow::FlowKind;
use crate::ingest::{IngestError, IngestOptions};
use crate::rng::SplitMix64;
use crate::torch::{self, DeviceChoice, TorchError};

/// Everything `trafgen train` can set.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub epochs: usize,
    pub seed: u64,
    pub device: DeviceChoice,
    pub max_packets: Option<u64>,
    pub ingest: IngestOptions,
    pub vae_hidden: i64,
    pub latent: i64,
    pub beta: f64,
    pub k_range: [usize; 2],
    pub lstm_hidden: i64,
    pub lstm_embed: i64,
    pub window: i64,
    pub max_lstm_windows: usize,
    /// Packet rows visited per VAE epoch (a fresh seeded sample each epoch).
    pub vae_rows_per_epoch: usize,
    /// Training rows the VAE holds as a tensor at most (a seeded sample when there are more;
    /// held-out rows: an eighth of it). Bounds training memory on large captures.
    pub vae_max_rows: usize,
    /// LSTM windows visited per epoch.
    pub lstm_windows_per_epoch: usize,
    pub aggregate_k_max: usize,
    pub patience: usize,
    pub validation_fraction: f64,
    /// Licence of each input (by path as given); others are "unknown".
    pub licences: HashMap<PathBuf, String>,
    /// The command line to record in the manifest.
    pub command: Vec<String>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 20,
            seed: 1,
            device: DeviceChoice::Auto,
            max_packets: None,
            ingest: IngestOptions::default(),
            vae_hidden: 64,
            latent: 4,
            beta: 0.1,
            k_range: [2, 16],
            lstm_hidden: 64,
            lstm_embed: 16,
            window: 32,
            max_lstm_windows: 50_000,
            vae_rows_per_epoch: 250_000,
            vae_max_rows: 2_000_000,
            lstm_windows_per_epoch: 8_000,
            aggregate_k_max: 8,
            patience: 3,
            validation_fraction: 0.1,
            licences: HashMap::new(),
            command: Vec::new(),
        }
    }
}

/// Progress of training, for bars and logs.
#[derive(Clone, Debug)]
pub enum Progress {
    Ingested { packets: usize, flows: usize },
    Epoch { level: String, epoch: usize, epochs: usize, train: f64, validation: f64 },
    Gmm { k: usize, bic: Vec<(usize, f64)> },
    LevelDone { level: String, seconds: f64 },
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Device(#[from] TorchError),
    #[error("{0}: cannot read input: {1}")]
    Input(PathBuf, std::io::Error),
    #[error("not enough data to train: {0}")]
    TooLittle(String),
    #[error("packet GMM: {0}")]
    Gmm(#[from] GmmError),
}

fn rows_tensor(ds: &Dataset, rows: &[usize], device: Device) -> Tensor {
    let mut v = Vec::with_capacity(rows.len() * PACKET_DIM);
    for &r in rows {
        v.extend_from_slice(ds.row(r));
    }
    Tensor::from_slice(&v).view([rows.len() as i64, PACKET_DIM as i64]).to_device(device)
}

/// Rows per chunk when encoding or labelling all packets.
const CHUNK_ROWS: usize = 65_536;

/// At most `max` of `rows`, a seeded sample kept in the original order (all when fewer).
fn bounded_sample(rows: &[usize], max: usize, rng: &mut SplitMix64) -> Vec<usize> {
    if rows.len() <= max {
        return rows.to_vec();
    }
    let mut idx: Vec<usize> = (0..rows.len()).collect();
    for i in 0..max {
        let j = i + rng.below((rows.len() - i) as u64) as usize;
        idx.swap(i, j);
    }
    let mut pick = idx[..max].to_vec();
    pick.sort_unstable();
    pick.into_iter().map(|i| rows[i]).collect()
}

/// Trains the three levels on `paths`.
pub fn train(paths: &[PathBuf], opts: &TrainOptions, progress: &mut dyn FnMut(Progress)) -> Result<Model, TrainError> {
    let device = torch::select(opts.device)?;
    tracing::info!(?device, "training device");
    let mut inputs = Vec::new();
    for p in paths {
        let (sha256, bytes) = dataset::sha256_file(p).map_err(|e| TrainError::Input(p.clone(), e))?;
        inputs.push(InputFile {
            path: p.display().to_string(),
            sha256,
            bytes,
            packets: 0,
            licence: opts.licences.get(p).cloned().unwrap_or_else(|| "unknown".into()),
        });
    }
    let ingest = IngestOptions { max_packets: opts.max_packets, ..opts.ingest.clone() };
    let ds = dataset::collect(paths, &ingest)?;
    for (i, f) in ds.report.files.iter().enumerate() {
        if let Some(inp) = inputs.get_mut(i) {
            inp.packets = f.packets;
        }
    }
    let n = ds.n_packets();
    progress(Progress::Ingested { packets: n, flows: ds.flows.len() });
    if n < 50 || ds.flows.len() < 4 {
        return Err(TrainError::TooLittle(format!("{n} packets in {} flows; at least 50 packets and 4 flows are needed", ds.flows.len())));
    }

    // held-out flows (seeded), for early stopping of every level
    let mut rng = SplitMix64::new(opts.seed);
    let is_val: Vec<bool> = (0..ds.flows.len()).map(|_| rng.next_f64() < opts.validation_fraction).collect();
    let (mut train_rows, mut val_rows) = (Vec::new(), Vec::new());
    for (f, v) in ds.flows.iter().zip(&is_val) {
        let rows = f.start..f.start + f.len;
        if *v { val_rows.extend(rows) } else { train_rows.extend(rows) }
    }
    if val_rows.is_empty() {
        val_rows = train_rows.clone();
    }

    // ---- packet level
    let t0 = Instant::now();
    // Memory: the dataset (f32 rows) is the only full-size copy. The VAE holds a bounded
    // sample of rows as tensors; latent means and components are computed chunk by chunk.
    let scaler = Scaler::fit_by(PACKET_DIM, train_rows.len(), |i| ds.row(train_rows[i]));
    let mut sample_rng = SplitMix64::new(opts.seed ^ 0x726f_7773);
    let vae_train = bounded_sample(&train_rows, opts.vae_max_rows.max(1), &mut sample_rng);
    let vae_val = bounded_sample(&val_rows, (opts.vae_max_rows / 8).max(1), &mut sample_rng);
    let xt = scaler.transform(&rows_tensor(&ds, &vae_train, device));
    let xv = scaler.transform(&rows_tensor(&ds, &vae_val, device));
    drop((vae_train, vae_val));
    let shape = VaeShape { input: PACKET_DIM as i64, hidden: opts.vae_hidden, latent: opts.latent };
    let mut vae = Vae::new(shape, device);
    let settings = |seed_off: u64, batch: usize, lr: f64, per_epoch: usize| TrainSettings {
        epochs: opts.epochs,
        batch,
        lr,
        patience: opts.patience,
        seed: opts.seed + seed_off,
        max_per_epoch: per_epoch,
        min_batches: super::vae::MIN_BATCHES,
    };
    let vae_loss = vae.train(&xt, &xv, opts.beta, &settings(1, 512, 2e-3, opts.vae_rows_per_epoch), |epoch, train, validation| {
        progress(Progress::Epoch { level: "packet VAE".into(), epoch, epochs: opts.epochs, train, validation })
    });
    drop((xt, xv));
    let z = Tensor::cat(
        &(0..n)
            .step_by(CHUNK_ROWS)
            .map(|start| {
                let rows: Vec<usize> = (start..(start + CHUNK_ROWS).min(n)).collect();
                vae.latent_means(&scaler.transform(&rows_tensor(&ds, &rows, device))).to_device(Device::Cpu).to_kind(Kind::Double)
            })
            .collect::<Vec<Tensor>>(),
        0,
    );
    let gmm_opts = GmmFitOptions { k_min: opts.k_range[0], k_max: opts.k_range[1], seed: opts.seed + 2, ..GmmFitOptions::default() };
    let fit = Gmm::fit(&z, &gmm_opts)?;
    progress(Progress::Gmm { k: fit.k, bic: fit.bic.clone() });
    let mut components: Vec<i64> = Vec::with_capacity(n);
    for start in (0..n).step_by(CHUNK_ROWS) {
        let part = z.narrow(0, start as i64, (n - start).min(CHUNK_ROWS) as i64);
        components.extend(Vec::<i64>::try_from(fit.gmm.predict(&part).to_kind(Kind::Int64)).unwrap_or_default());
    }
    drop(z);
    let seconds_packet = t0.elapsed().as_secs_f64();
    progress(Progress::LevelDone { level: "packet".into(), seconds: seconds_packet });

    // ---- flow level
    let t1 = Instant::now();
    let lshape = LstmShape { k: fit.k as i64, embed: opts.lstm_embed, hidden: opts.lstm_hidden, layers: 1, window: opts.window };
    let mut lstm: [Option<FlowLstm>; 3] = [None, None, None];
    let mut lstm_loss = Vec::new();
    for kind in FlowKind::ALL {
        let (mut tr, mut va) = (Vec::new(), Vec::new());
        for (f, v) in ds.flows.iter().zip(&is_val) {
            if f.kind == kind {
                let seq = components[f.start..f.start + f.len].to_vec();
                if *v { va.push(seq) } else { tr.push(seq) }
            }
        }
        if tr.is_empty() {
            continue;
        }
        let mut m = FlowLstm::new(lshape, device);
        let level = format!("flow LSTM {}", kind.name());
        let curve = m.train(&tr, &va, &settings(3 + kind.index() as u64, 64, 1e-2, opts.lstm_windows_per_epoch), opts.max_lstm_windows, |epoch, train, validation| {
            progress(Progress::Epoch { level: level.clone(), epoch, epochs: opts.epochs, train, validation })
        });
        lstm_loss.push((kind.name().to_string(), curve));
        lstm[kind.index()] = Some(m);
    }
    let seconds_flow = t1.elapsed().as_secs_f64();
    progress(Progress::LevelDone { level: "flow".into(), seconds: seconds_flow });

    // ---- aggregate level
    let t2 = Instant::now();
    let mut aggregate = Aggregate::fit(&ds.flow_rows, opts.aggregate_k_max, opts.seed + 7)?;
    super::standing::learn_sequences(&mut aggregate.standing, &ds, &components, fit.k);
    let tcp = TcpHeads::fit(&ds, (0..ds.flows.len()).filter(|&i| !is_val[i]));
    let payload = PayloadSupport::fit(&ds, train_rows.iter().copied());
    let gaps = GapSupport::fit(&ds, train_rows.iter().copied());
    let component_gaps = ComponentGaps::fit(&ds, (0..ds.flows.len()).filter(|&i| !is_val[i]), &components, fit.k);
    let seconds_aggregate = t2.elapsed().as_secs_f64();
    progress(Progress::LevelDone { level: "aggregate".into(), seconds: seconds_aggregate });

    let mut counts = KindCounts::default();
    for r in &ds.flow_rows {
        match r.kind {
            FlowKind::Connected => counts.connected += 1,
            FlowKind::Unconnected => counts.unconnected += 1,
            FlowKind::NoFlow => counts.noflow += 1,
        }
    }
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        trafgen_version: env!("CARGO_PKG_VERSION").into(),
        command: opts.command.clone(),
        seed: opts.seed,
        device: format!("{device:?}"),
        inputs,
        features: Features { names: PACKET_FEATURES.iter().map(|s| s.to_string()).collect(), scaler },
        packet: PacketLevel { vae: shape, beta: opts.beta, gmm_k_range: opts.k_range, gmm_k: fit.k, gmm_bic: fit.bic },
        flow: FlowLevel {
            kinds: FlowKind::ALL.iter().filter(|k| lstm[k.index()].is_some()).map(|k| k.name().to_string()).collect(),
            lstm: lshape,
        },
        aggregate: AggregateLevel { gmm_k_max: opts.aggregate_k_max, flows: counts },
        training: TrainingSummary { packets: n as u64, vae_loss, lstm_loss, seconds_packet, seconds_flow, seconds_aggregate },
    };
    Ok(Model { manifest, vae, packet_gmm: fit.gmm, lstm, aggregate, tcp, payload, gaps, component_gaps })
}

#[cfg(test)]
mod bounded_sample_tests {
    use super::*;

    #[test]
    fn keeps_order_and_at_most_max_distinct_rows() {
        let rows: Vec<usize> = (100..1100).collect();
        let mut rng = SplitMix64::new(3);
        let s = bounded_sample(&rows, 50, &mut rng);
        assert_eq!(s.len(), 50);
        assert!(s.windows(2).all(|w| w[0] < w[1]), "sorted and distinct");
        assert!(s.iter().all(|r| rows.contains(r)));
        assert_ne!(s, rows[..50], "a sample, not the first rows");
        assert_eq!(bounded_sample(&rows[..10], 50, &mut rng), rows[..10]);
    }
}
