//! Transparent huge pages under the flow table's large arrays.
//!
//! This module owns one hint: a table of a few hundred thousand flows spans tens of
//! megabytes, far more than the TLB covers with 4 KiB pages, so every flow lookup pays a page
//! walk on top of its cache miss. Where THP is in `madvise` mode (Debian's default), asking
//! for huge pages on the table's memory removes most of those walks. It is only a hint: on
//! other systems, or when the kernel declines, nothing changes.

/// Huge page size on x86-64 and most aarch64 kernels.
const HUGE: usize = 2 << 20;

/// Asks for huge pages on the 2 MiB-aligned part of `v`'s allocation (its whole capacity).
/// Cheap enough to call after every growth; does nothing for allocations under 4 MiB.
pub fn advise<T>(v: &Vec<T>) {
    let bytes = v.capacity() * std::mem::size_of::<T>();
    if bytes < 2 * HUGE {
        return;
    }
    let start = v.as_ptr() as usize;
    let aligned = start.next_multiple_of(HUGE);
    let end = (start + bytes) & !(HUGE - 1);
    if end <= aligned {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: the range lies inside `v`'s live allocation; MADV_HUGEPAGE changes no contents
    // and an error (e.g. THP disabled) leaves the memory as it was.
    unsafe {
        libc::madvise(aligned as *mut libc::c_void, end - aligned, libc::MADV_HUGEPAGE);
    }
}
