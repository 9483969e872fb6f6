//! Internet checksums (RFC 1071) for headers we build, and payload sums in O(1).
//!
//! Payload bytes come from a fixed fill pattern, so the ones-complement sum of the first `n`
//! payload bytes is a table lookup ([`PayloadFill::sum`]); checksumming a frame then touches
//! only its headers, whatever its size.

/// Ones-complement partial sum of `data` (big-endian 16-bit words; an odd last byte is the high
/// half of a word), added to `acc`. Not folded: 2^48 words fit before a `u64` could overflow.
/// The one implementation of the sum in trafgen (the validator uses it too).
pub fn add(acc: u64, data: &[u8]) -> u64 {
    let mut sum = acc;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        // a 32-bit word is two 16-bit words; folding later gives the same ones-complement sum
        sum += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let mut pairs = words.remainder().chunks_exact(2);
    for p in &mut pairs {
        sum += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

/// Folds a partial sum to 16 bits (end-around carry).
pub fn fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Folds a partial sum and complements it: the value to store in a checksum field.
pub fn finish(sum: u64) -> u16 {
    !fold(sum)
}

/// Payload bytes for frames and the prefix sums of their checksum.
#[derive(Clone, Debug)]
pub struct PayloadFill {
    bytes: Vec<u8>,
    /// `prefix[n]` = partial sum of `bytes[..n]`.
    prefix: Vec<u64>,
}

impl PayloadFill {
    /// `pattern` repeated to `max_len` bytes (an empty pattern means zeros).
    pub fn new(pattern: &[u8], max_len: usize) -> PayloadFill {
        let bytes: Vec<u8> = if pattern.is_empty() {
            vec![0; max_len]
        } else {
            pattern.iter().copied().cycle().take(max_len).collect()
        };
        let mut prefix = Vec::with_capacity(max_len + 1);
        prefix.push(0u64);
        let mut even = 0u64; // sum of complete words so far
        for n in 1..=max_len {
            let v = if n % 2 == 0 {
                even += u64::from(u16::from_be_bytes([bytes[n - 2], bytes[n - 1]]));
                even
            } else {
                even + (u64::from(bytes[n - 1]) << 8)
            };
            prefix.push(v);
        }
        PayloadFill { bytes, prefix }
    }

    /// The first `n` payload bytes (`n` ≤ the fill's length).
    pub fn bytes(&self, n: usize) -> &[u8] {
        &self.bytes[..n]
    }

    /// Partial checksum sum of the first `n` payload bytes.
    pub fn sum(&self, n: usize) -> u64 {
        self.prefix[n]
    }

    pub fn max_len(&self) -> usize {
        self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 → sum 0xddf2, checksum 0x220d
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(add(0, &d)), !0xddf2);
    }

    #[test]
    fn prefix_sums_match_direct_sums() {
        let fill = PayloadFill::new(b"trafgen\x00\xff\x7f", 1500);
        for n in [0, 1, 2, 3, 7, 10, 11, 999, 1000, 1499, 1500] {
            assert_eq!(finish(fill.sum(n)), finish(add(0, fill.bytes(n))), "n={n}");
        }
        let zeros = PayloadFill::new(&[], 64);
        assert_eq!(zeros.sum(64), 0);
        assert!(zeros.bytes(64).iter().all(|&b| b == 0));
    }
}
