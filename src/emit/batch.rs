//! [`Batch`]: frames with their departure offsets, packed in one reusable buffer.
//!
//! This module owns the unit that travels on the ring from a source's thread to the pacer: up
//! to [`BATCH_FRAMES`] frames, each stored as its header and payload parts back to back in one
//! byte buffer, with the offset (ns from the stream's start) it is due at. Batches are sent
//! back to the producer once sent and refilled in place, so in steady state nothing is
//! allocated per packet. It does not decide offsets (the sources) nor send (the pacer).

use super::sender::FrameParts;

/// Frames per batch: enough to amortise a channel hand-over, few enough to keep latency low.
pub const BATCH_FRAMES: usize = 256;

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    offset_ns: i64,
    start: u32,
    header: u32,
    payload: u32,
}

/// Frames and their offsets.
#[derive(Debug, Default)]
pub struct Batch {
    data: Vec<u8>,
    slots: Vec<Slot>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch { data: Vec::with_capacity(BATCH_FRAMES * 256), slots: Vec::with_capacity(BATCH_FRAMES) }
    }

    /// Appends a frame made of `header` then `payload`, due at `offset_ns`.
    pub fn push(&mut self, offset_ns: i64, header: &[u8], payload: &[u8]) {
        let start = self.data.len() as u32;
        self.data.extend_from_slice(header);
        self.data.extend_from_slice(payload);
        self.slots.push(Slot { offset_ns, start, header: header.len() as u32, payload: payload.len() as u32 });
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.slots.len() >= BATCH_FRAMES
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.slots.clear();
    }

    /// Offset of frame `i`, ns from the stream's start.
    pub fn offset(&self, i: usize) -> i64 {
        self.slots[i].offset_ns
    }

    /// Frame `i` as (header, payload).
    pub fn frame(&self, i: usize) -> FrameParts<'_> {
        let s = self.slots[i];
        let (a, h) = (s.start as usize, s.header as usize);
        [&self.data[a..a + h], &self.data[a + h..a + h + s.payload as usize]]
    }

    /// Length of frame `i` in bytes.
    pub fn frame_len(&self, i: usize) -> usize {
        (self.slots[i].header + self.slots[i].payload) as usize
    }

    /// Bytes of all frames.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_back_as_pushed_and_clear_keeps_capacity() {
        let mut b = Batch::new();
        b.push(5, b"head", b"pay");
        b.push(9, b"h2", b"");
        assert_eq!(b.len(), 2);
        assert_eq!(b.frame(0), [&b"head"[..], &b"pay"[..]]);
        assert_eq!(b.frame(1), [&b"h2"[..], &b""[..]]);
        assert_eq!((b.offset(0), b.offset(1), b.frame_len(0), b.bytes()), (5, 9, 7, 9));
        let cap = b.data.capacity();
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.data.capacity(), cap);
    }
}
