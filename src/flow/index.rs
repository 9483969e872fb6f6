//! The flow table's index: flow key → slot number, open addressing with linear probing.
//!
//! Each entry is one `u64`: the upper 32 bits are the key's hash tag, the lower 32 the slot
//! number + 1 (0 marks an empty entry). Eight bytes per entry keep the index of a table with
//! hundreds of thousands of flows a few MB, and a probe touches one cache line, which the
//! ingestion loop prefetches a batch of packets ahead ([`FlowIndex::prefetch`]). Deletion
//! shifts later entries of the probe run back (no tombstones), so lookups never slow down as
//! flows come and go. The index never compares keys itself: the caller's `same` closure
//! checks the key stored in the slot.

/// Maximum load (entries / capacity) before the index doubles: 1/2.
const MAX_LOAD_SHIFT: u32 = 1;
const MIN_CAPACITY: usize = 1024;

pub struct FlowIndex {
    entries: Vec<u64>,
    mask: usize,
    len: usize,
}

/// Where a key was found, or where it would go.
pub enum Probe {
    Found { pos: usize, slot: u32 },
    Vacant { pos: usize },
}

impl Default for FlowIndex {
    fn default() -> Self {
        Self::with_capacity(MIN_CAPACITY)
    }
}

#[inline]
fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32
}

impl FlowIndex {
    fn with_capacity(cap: usize) -> Self {
        let cap = cap.next_power_of_two().max(MIN_CAPACITY);
        let entries = vec![0; cap];
        super::huge_pages::advise(&entries);
        FlowIndex { entries, mask: cap - 1, len: 0 }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn home(&self, tag: u32) -> usize {
        tag as usize & self.mask
    }

    /// Asks the CPU to bring the first entry of `hash`'s probe run into cache.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        crate::prefetch::prefetch(&self.entries[self.home(tag_of(hash))]);
    }

    /// The slot a key with `hash` most likely lives in, without comparing keys (a hint for
    /// prefetching the flow; the first entry whose tag matches).
    #[inline]
    pub fn likely_slot(&self, hash: u64) -> Option<u32> {
        let tag = tag_of(hash);
        let mut pos = self.home(tag);
        loop {
            let e = self.entries[pos];
            if e == 0 {
                return None;
            }
            if (e >> 32) as u32 == tag {
                return Some((e as u32) - 1);
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// Finds the key with `hash` for which `same(slot)` holds.
    #[inline]
    pub fn probe(&self, hash: u64, mut same: impl FnMut(u32) -> bool) -> Probe {
        let tag = tag_of(hash);
        let mut pos = self.home(tag);
        loop {
            let e = self.entries[pos];
            if e == 0 {
                return Probe::Vacant { pos };
            }
            if (e >> 32) as u32 == tag {
                let slot = (e as u32) - 1;
                if same(slot) {
                    return Probe::Found { pos, slot };
                }
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// Fills the vacant position `pos` (from [`FlowIndex::probe`], with no change to the index
    /// since) with `slot`. May grow the index; `pos` is then recomputed.
    pub fn insert_at(&mut self, pos: usize, hash: u64, slot: u32) {
        debug_assert_eq!(self.entries[pos], 0);
        self.entries[pos] = (u64::from(tag_of(hash)) << 32) | (u64::from(slot) + 1);
        self.len += 1;
        if self.len << MAX_LOAD_SHIFT > self.entries.len() {
            self.grow();
        }
    }

    /// Points the entry at `pos` to another slot (same key).
    pub fn repoint(&mut self, pos: usize, slot: u32) {
        let e = self.entries[pos];
        self.entries[pos] = (e & !0xffff_ffff) | (u64::from(slot) + 1);
    }

    /// Removes the entry at `pos`, shifting the rest of its probe run back.
    pub fn remove_at(&mut self, mut pos: usize) {
        self.entries[pos] = 0;
        self.len -= 1;
        let mut next = (pos + 1) & self.mask;
        loop {
            let e = self.entries[next];
            if e == 0 {
                return;
            }
            let home = self.home((e >> 32) as u32);
            // `e` may move back to `pos` unless its home lies cyclically in (pos, next].
            let stays = if pos <= next { pos < home && home <= next } else { pos < home || home <= next };
            if !stays {
                self.entries[pos] = e;
                self.entries[next] = 0;
                pos = next;
            }
            next = (next + 1) & self.mask;
        }
    }

    fn grow(&mut self) {
        let old = std::mem::take(&mut self.entries);
        let cap = old.len() * 2;
        self.entries = vec![0; cap];
        super::huge_pages::advise(&self.entries);
        self.mask = cap - 1;
        for e in old.into_iter().filter(|&e| e != 0) {
            let mut pos = self.home((e >> 32) as u32);
            while self.entries[pos] != 0 {
                pos = (pos + 1) & self.mask;
            }
            self.entries[pos] = e;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A model check: random inserts and removes with colliding tags agree with a HashMap.
    #[test]
    fn agrees_with_a_hash_map_under_churn() {
        let mut rng = crate::rng::SplitMix64::new(7);
        let mut idx = FlowIndex::default();
        // keys are u64s; hashes deliberately collide (few distinct tags, same home)
        let hash = |k: u64| (k % 97) << 32 | k;
        let mut slots: Vec<Option<u64>> = Vec::new(); // slot -> key
        let mut model: HashMap<u64, u32> = HashMap::new();
        for _ in 0..20_000 {
            let k = rng.next_u64() % 3000;
            match idx.probe(hash(k), |s| slots[s as usize] == Some(k)) {
                Probe::Found { pos, slot } => {
                    assert_eq!(model.get(&k), Some(&slot), "key {k}");
                    if rng.next_u64() % 2 == 0 {
                        idx.remove_at(pos);
                        slots[slot as usize] = None;
                        model.remove(&k);
                    }
                }
                Probe::Vacant { pos } => {
                    assert!(!model.contains_key(&k), "key {k} lost");
                    if rng.next_u64() % 3 != 0 {
                        let slot = slots.len() as u32;
                        slots.push(Some(k));
                        idx.insert_at(pos, hash(k), slot);
                        model.insert(k, slot);
                    }
                }
            }
            assert_eq!(idx.len(), model.len());
        }
        for (k, slot) in &model {
            assert!(matches!(idx.probe(hash(*k), |s| slots[s as usize] == Some(*k)), Probe::Found { slot: s, .. } if s == *slot));
        }
        // every key not in the model is absent
        for k in 0..3000u64 {
            let hit = matches!(idx.probe(hash(k), |s| slots[s as usize] == Some(k)), Probe::Found { .. });
            assert_eq!(hit, model.contains_key(&k), "key {k}");
        }
    }
}
