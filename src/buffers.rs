//! Giving back memory that one unusually large scrape made a reused buffer
//! grow: buffers kept from scrape to scrape save allocations, but must not
//! hold a burst's size for the rest of the process's life.

/// How often freed heap memory is handed back to the system.
pub const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Hands memory that was freed back to the system. glibc's malloc keeps
/// freed small chunks (the series of a burst, say) in its arenas, so RSS
/// would stay at the burst's peak; `malloc_trim` returns their pages. It
/// walks only free chunks, so calling it every [`TRIM_EVERY`] is cheap.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only takes the allocator's own locks and touches
    // no memory of ours.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Malloc arenas at most, unless `MALLOC_ARENA_MAX` says otherwise.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: i32 = 2;

/// Allocations of this many bytes or more get pages of their own (mmap),
/// unless `MALLOC_MMAP_THRESHOLD_` says otherwise.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_AT: i32 = 1 << 20;

/// Caps glibc's malloc arenas at [`ARENAS`]; glibc gives each thread that
/// allocates an arena of its own (relay's runtime has three or four
/// threads), and each keeps its own partly used pages: 0.8 MB of a
/// 1k-series Pod's 2.5 MB of heap at rest. Two, not one: at 100k series one
/// arena cost 2-3% more CPU (the threads waited for its lock), two did not.
///
/// And fixes glibc's mmap threshold at [`MMAP_AT`]: by default glibc raises
/// it to the size of each large block freed (up to 32 MiB), after which
/// blocks that large come from an arena and, freed, stay resident until
/// the next [`trim_heap`] and fit only what that arena allocates next. A
/// served target's text and the merged body (about 11 MB each at 100k
/// series, made and dropped every scrape, on whichever runtime thread)
/// then piled up: peak RSS 87.8 MiB against 70.9 MiB with the threshold
/// fixed (100k series, remote write, /metrics fetched every 5 s). A block
/// of its own goes back to the system when freed, and grows by mremap.
pub fn cap_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes a setting of the allocator.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: as above.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_AT);
        }
    }
}

/// Buffers smaller than this are kept whatever their use.
const KEEP_BELOW: usize = 1 << 20;

/// Shrinks `v` to twice `used` elements when its capacity is over four
/// times that and over 1 MiB: kept while scrapes are of a size, given back
/// when they are much smaller than the largest one.
pub fn give_back<T>(v: &mut Vec<T>, used: usize) {
    if oversized(v.capacity(), used, std::mem::size_of::<T>()) {
        v.shrink_to(used.max(v.len()).saturating_mul(2));
    }
}

/// Shrinks a large `v` to `used` and an eighth when it holds over a
/// quarter more: for a buffer refilled with about the same amount every
/// scrape (a target's rendered text), which doubling would otherwise leave
/// up to twice its use, for the rest of the process's life.
pub fn fit<T>(v: &mut Vec<T>, used: usize) {
    let used = used.max(v.len());
    if v.capacity().saturating_mul(std::mem::size_of::<T>().max(1)) > KEEP_BELOW
        && v.capacity() > used.saturating_add(used / 4)
    {
        v.shrink_to(used.saturating_add(used / 8));
    }
}

/// Whether a buffer of `capacity` elements of `size` bytes, `used` of them
/// in use, holds much more than its use.
pub fn oversized(capacity: usize, used: usize, size: usize) -> bool {
    capacity.saturating_mul(size.max(1)) > KEEP_BELOW && capacity > used.saturating_mul(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether glibc gave the block at `p` pages of its own: the
    /// IS_MMAPPED bit of its chunk's size field, the word before it.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn mmapped(p: *const u8) -> bool {
        // SAFETY: `p` came from glibc's malloc (Rust's System allocator
        // with the default alignment), whose chunk header precedes it.
        unsafe { *(p as *const usize).sub(1) & 2 != 0 }
    }

    /// A large block freed does not make later blocks of its size come
    /// from an arena (glibc's default), where they would stay resident.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn large_blocks_keep_pages_of_their_own_after_a_larger_one_is_freed() {
        cap_arenas();
        let big = vec![1u8; 8 << 20];
        assert!(mmapped(big.as_ptr()));
        drop(big);
        let block = vec![1u8; 2 << 20];
        assert!(mmapped(block.as_ptr()), "a 2 MiB block came from an arena");
    }

    #[test]
    fn large_idle_buffers_shrink_and_busy_or_small_ones_stay() {
        let mut v: Vec<u8> = Vec::with_capacity(64 << 20);
        v.extend_from_slice(b"small");
        give_back(&mut v, 5);
        assert!(v.capacity() < 1 << 10, "{}", v.capacity());
        assert_eq!(v, b"small");

        let mut busy: Vec<u8> = Vec::with_capacity(64 << 20);
        give_back(&mut busy, 20 << 20);
        assert!(busy.capacity() >= 64 << 20);

        let mut small: Vec<u8> = Vec::with_capacity(512 << 10);
        give_back(&mut small, 0);
        assert!(small.capacity() >= 512 << 10);
    }

    #[test]
    fn steady_buffers_fit_their_use_with_an_eighth_to_spare() {
        let mut v: Vec<u8> = Vec::with_capacity(16 << 20);
        v.resize(9 << 20, 1);
        fit(&mut v, 9 << 20);
        assert!(
            v.capacity() >= 9 << 20 && v.capacity() <= (9 << 20) + (9 << 17) + 64,
            "{}",
            v.capacity()
        );
        let fitted = v.capacity();
        fit(&mut v, 9 << 20);
        assert_eq!(v.capacity(), fitted, "a fitted buffer stays");
        let mut small: Vec<u8> = Vec::with_capacity(512 << 10);
        fit(&mut small, 0);
        assert!(small.capacity() >= 512 << 10);
    }
}
