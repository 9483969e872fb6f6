//! Software prefetch hints, for the hot loops that know an address well before they load it
//! (the flow table's batch, the generation engine's next flows).
//!
//! Hints only: a prefetch never faults, whatever the address, and changes no result. On
//! targets other than x86-64 they compile to nothing.

/// A hint to load the cache line holding `r`.
#[inline]
pub fn prefetch<T>(r: &T) {
    prefetch_ptr((r as *const T).cast());
}

/// A hint to load every cache line of the `len` bytes at `p`.
#[inline]
pub fn prefetch_bytes(p: *const u8, len: usize) {
    for off in (0..len).step_by(64) {
        prefetch_ptr(p.wrapping_add(off));
    }
}

/// A hint to load the cache line holding address `p`.
#[inline]
pub fn prefetch_ptr(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch only hints the cache; it never faults and its result is invisible.
    #[allow(unused_unsafe)]
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
