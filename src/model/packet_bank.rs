//! A bank of decoded packets per GMM component, so generation decodes no packet one by one.
//!
//! Sampling a packet of component `k` means drawing a latent point from the component's
//! Gaussian and decoding it through the VAE. The bank does exactly that ahead of time, for
//! `per_component` draws of every component in one batched decoder pass (seeded), and
//! generation then picks one of the component's decoded packets uniformly. With the default
//! 4,096 draws per component the bank holds the component's distribution to within sampling
//! noise (a KS distance of ~0.02), at the cost of one decoder pass at start instead of one per
//! packet. This module does not choose components (the flow LSTM does).

use super::{Model, PacketSample};
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
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    time_diff_s: f32,
    size: u16,
    header_len: u8,
    backward: bool,
    tcp_flags: u8,
}

impl Entry {
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
        PacketBank { per_component, packets }
    }

    pub fn components(&self) -> usize {
        self.packets.len() / self.per_component
    }

    /// A packet of component `k` (uniform over the bank's draws). Panics if `k` is out of range.
    #[inline]
    pub fn draw(&self, k: usize, rng: &mut SplitMix64) -> PacketSample {
        let i = rng.below(self.per_component as u64) as usize;
        let e = self.packets[k * self.per_component + i];
        PacketSample {
            size: u32::from(e.size),
            header_len: u32::from(e.header_len),
            direction: if e.backward { Direction::Backward } else { Direction::Forward },
            tcp_flags: u16::from(e.tcp_flags),
            time_diff_s: f64::from(e.time_diff_s),
        }
    }
}
