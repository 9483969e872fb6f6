//! A bank of decoded packets per GMM component, so generation decodes no packet one by one.
//!
//! Sampling a packet of component `k` means drawing a latent point from the component's
//! Gaussian and decoding it through the VAE. The bank does exactly that ahead of time, for
//! `per_component` draws of every component in one batched decoder pass (seeded), and
//! generation then picks one of the component's decoded packets uniformly. With the default
//! 4,096 draws per component the bank holds the component's distribution to within sampling
//! noise (a KS distance of ~0.02), at the cost of one decoder pass at start instead of one per
//! packet. Each component's draws are kept in order of payload and split into [`BINS`]
//! bins of equal mass, so a caller steering sizes ([`crate::synth::steer`]) can draw from a
//! part of the component; a plain draw is uniform over all of it. This module does not
//! choose components (the flow LSTM does).

use super::{Model, PacketSample};
use crate::capture::TcpFlags;
use crate::flow::Direction;
use crate::rng::SplitMix64;

/// Draws per component unless told otherwise.
pub const DEFAULT_PER_COMPONENT: usize = 4096;

#[derive(Clone, Debug)]
pub struct PacketBank {
    per_component: usize,
    /// `k × per_component` decoded packets, component by component, in 12 bytes each: the
    /// bank is read at random once per generated packet, so the smaller it is the more of it
    /// stays in cache (4,096 × 15 components: 720 KB).
    packets: Vec<Entry>,
    /// Per component, per bin: the mean payload (size less headers) of its packets, bytes.
    bin_payload: Vec<f32>,
    /// Per component: the share of its packets the server sends.
    back_share: Vec<f32>,
    /// Per handshake step (the client's SYN, the server's SYN-ACK, the client's empty ACK),
    /// per component: the share of its packets that are that step's packet.
    opening_share: [Vec<f32>; 3],
}

/// Bins of equal mass per component, in order of payload.
pub const BINS: usize = 8;

#[derive(Clone, Copy, Debug)]
struct Entry {
    time_diff_s: f32,
    size: u16,
    header_len: u8,
    backward: bool,
    tcp_flags: u8,
}

impl Entry {
    fn payload(&self) -> u16 {
        self.size.saturating_sub(u16::from(self.header_len))
    }

    fn sample(self) -> PacketSample {
        PacketSample {
            size: u32::from(self.size),
            header_len: u32::from(self.header_len),
            direction: if self.backward { Direction::Backward } else { Direction::Forward },
            tcp_flags: u16::from(self.tcp_flags),
            time_diff_s: f64::from(self.time_diff_s),
        }
    }

    fn of(p: &PacketSample) -> Entry {
        Entry {
            time_diff_s: p.time_diff_s as f32,
            size: p.size.min(u32::from(u16::MAX)) as u16,
            header_len: p.header_len.min(255) as u8,
            backward: p.direction == Direction::Backward,
            tcp_flags: p.tcp_flags as u8,
        }
    }
}

impl PacketBank {
    /// Decodes `per_component` draws of every component of the model's packet GMM.
    pub fn build(model: &Model, per_component: usize, rng: &mut SplitMix64) -> PacketBank {
        let per_component = per_component.max(1);
        let k = model.packet_gmm.k();
        let mut packets = Vec::with_capacity(k * per_component);
        // decode in slices of 64k rows to bound the decoder's memory
        let components: Vec<usize> = (0..k).flat_map(|c| std::iter::repeat_n(c, per_component)).collect();
        for chunk in components.chunks(1 << 16) {
            packets.extend(model.sample_packets(chunk, rng).iter().map(Entry::of));
        }
        // a component's gaps are those its later packets had in training, at their decoded ranks
        if model.component_gaps.fits(k) {
            for (c, part) in packets.chunks_mut(per_component).enumerate() {
                let mut gaps: Vec<f32> = part.iter().map(|e| e.time_diff_s).collect();
                model.component_gaps.map_ranked(c, &mut gaps);
                for (e, g) in part.iter_mut().zip(gaps) {
                    e.time_diff_s = if g > 0.0 { model.gaps.snap(f64::from(g)) as f32 } else { 0.0 };
                }
            }
        }
        let mut bin_payload = Vec::with_capacity(k * BINS);
        let share = |is: &dyn Fn(&Entry) -> bool| -> Vec<f32> { packets.chunks(per_component).map(|c| c.iter().filter(|e| is(e)).count() as f32 / c.len() as f32).collect() };
        let back_share = share(&|e| e.backward);
        let flags = |e: &Entry| TcpFlags(u16::from(e.tcp_flags));
        let opening_share = [
            share(&|e| flags(e).has(TcpFlags::SYN) && !flags(e).has(TcpFlags::ACK) && !e.backward),
            share(&|e| flags(e).has(TcpFlags::SYN) && flags(e).has(TcpFlags::ACK) && e.backward),
            share(&|e| !flags(e).has(TcpFlags::SYN) && !flags(e).has(TcpFlags::FIN) && !flags(e).has(TcpFlags::RST) && e.payload() == 0 && !e.backward),
        ];
        for c in packets.chunks_mut(per_component) {
            // stable: entries of equal payload keep their drawn order
            c.sort_by_key(Entry::payload);
            for b in 0..BINS {
                let part = &c[bin_range(per_component, b)];
                bin_payload.push((part.iter().map(|e| f64::from(e.payload())).sum::<f64>() / part.len() as f64) as f32);
            }
        }
        PacketBank { per_component, packets, bin_payload, back_share, opening_share }
    }

    /// Per component and bin (`k * BINS + b`): the mean payload of its packets, bytes (what
    /// [`crate::synth::steer`] tilts choices by).
    pub fn bin_payloads(&self) -> &[f32] {
        &self.bin_payload
    }

    /// A packet of bin `b` of component `k` (uniform within the bin). Panics if out of range.
    #[inline]
    pub fn draw_in_bin(&self, k: usize, b: usize, rng: &mut SplitMix64) -> PacketSample {
        let r = bin_range(self.per_component, b);
        let i = r.start + rng.below(r.len() as u64) as usize;
        self.packets[k * self.per_component + i].sample()
    }

    /// Per component: the share of its packets the server sends (what
    /// [`crate::synth::steer`] draws the sending side by).
    pub fn back_shares(&self) -> &[f32] {
        &self.back_share
    }

    /// Per component: the share of its packets that are step `step` of a TCP handshake (0 the
    /// client's SYN, 1 the server's SYN-ACK, 2 the client's empty ACK): what the engine draws
    /// the LSTM's replay of the handshake among.
    pub fn opening_shares(&self, step: usize) -> &[f32] {
        &self.opening_share[step]
    }

    pub fn components(&self) -> usize {
        self.packets.len() / self.per_component
    }

    /// A packet of component `k` (uniform over the bank's draws). Panics if `k` is out of range.
    #[inline]
    pub fn draw(&self, k: usize, rng: &mut SplitMix64) -> PacketSample {
        let i = rng.below(self.per_component as u64) as usize;
        self.packets[k * self.per_component + i].sample()
    }
}

/// Entries of bin `b` among `n` (every bin at least one entry when `n` ≥ 1; with fewer
/// entries than bins, neighbouring bins share one).
fn bin_range(n: usize, b: usize) -> std::ops::Range<usize> {
    let start = (b * n / BINS).min(n.saturating_sub(1));
    let end = ((b + 1) * n / BINS).max(start + 1).min(n.max(1));
    start..end
}
