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
use crate::rng::SplitMix64;

/// Draws per component unless told otherwise.
pub const DEFAULT_PER_COMPONENT: usize = 4096;

#[derive(Clone, Debug)]
pub struct PacketBank {
    per_component: usize,
    /// `k × per_component` decoded packets, component by component.
    packets: Vec<PacketSample>,
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
            packets.extend(model.sample_packets(chunk, rng));
        }
        PacketBank { per_component, packets }
    }

    pub fn components(&self) -> usize {
        self.packets.len() / self.per_component
    }

    /// A packet of component `k` (uniform over the bank's draws). Panics if `k` is out of range.
    #[inline]
    pub fn draw(&self, k: usize, rng: &mut SplitMix64) -> &PacketSample {
        let i = rng.below(self.per_component as u64) as usize;
        &self.packets[k * self.per_component + i]
    }
}
