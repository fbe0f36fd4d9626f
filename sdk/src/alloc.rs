//! The allocator plugins use on Wasm: segregated free lists by size class.
//!
//! Why not a per-batch arena: an arena that is reset after each batch frees
//! everything allocated during the batch, including what the plugin keeps
//! in `self` across batches (a cache entry, a grown `Vec`) — a
//! use-after-free the type system cannot see. A reference-counted chunk
//! arena is safe but one long-lived object pins a whole chunk.
//!
//! What we do instead gives the arena's speed without its hazard. Small
//! blocks (≤ 32 KiB, alignment ≤ 16) are rounded up to a power-of-two size
//! class; `alloc` pops the class's free list or bumps a pointer through a
//! 256 KiB chunk, `dealloc` pushes the block back. Both are a handful of
//! instructions with no search, no coalescing and no headers. A batch's
//! temporaries (parsed JSON, serialized outputs) are freed when `process`
//! returns and their blocks are reused by the next batch, so steady state
//! asks the system for nothing; memory kept across batches is simply never
//! freed, so it stays valid. Memory of small classes is kept for reuse, not
//! returned: the peak of each class is held for the instance's lifetime
//! (bounded by the host's memory cap). Larger or over-aligned blocks go to
//! the system allocator.
//!
//! Measured on the reference transform (`plugins/fixtures/reference`,
//! batches of 1024, 200,000 events through the engine plus the same run
//! natively, CPU time of the whole benchmark process, three runs each on a
//! loaded 2-core machine): 1.45–1.51 s with this allocator, 1.66–1.72 s
//! with Rust's default (wasi-libc's dlmalloc) — about a sixth of the Wasm
//! side's time saved.
//!
//! `export!(MyType, allocator = system)` opts out.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

/// Smallest block: room for the free-list link on every target, and
/// 16-byte alignment for every block.
const MIN_SHIFT: u32 = 4;
/// Largest block served from size classes.
const MAX_SHIFT: u32 = 15;
const CLASSES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;
/// Bytes requested from the system at a time for small blocks.
const CHUNK: usize = 256 * 1024;
/// Alignment guaranteed by every small block.
const BLOCK_ALIGN: usize = 1 << MIN_SHIFT;

/// The size class of `layout`, or `None` for the system allocator.
#[inline]
fn class_of(layout: Layout) -> Option<usize> {
    if layout.align() > BLOCK_ALIGN || layout.size() > 1 << MAX_SHIFT {
        return None;
    }
    let size = layout.size().max(1 << MIN_SHIFT);
    let shift = usize::BITS - (size - 1).leading_zeros();
    Some((shift - MIN_SHIFT) as usize)
}

/// The single-threaded heap behind `SizeClassAllocator` (the global
/// allocator of a Wasm plugin).
#[derive(Debug)]
pub struct Heap {
    free: [*mut u8; CLASSES],
    bump: *mut u8,
    bump_end: *mut u8,
}

impl Default for Heap {
    fn default() -> Self {
        Heap::new()
    }
}

impl Heap {
    /// An empty heap.
    pub const fn new() -> Heap {
        Heap {
            free: [ptr::null_mut(); CLASSES],
            bump: ptr::null_mut(),
            bump_end: ptr::null_mut(),
        }
    }

    /// Allocate a block for `layout`.
    ///
    /// # Safety
    /// As [`GlobalAlloc::alloc`].
    #[inline]
    pub unsafe fn alloc(&mut self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(layout) else {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.alloc(layout) };
        };
        let head = self.free[class];
        if !head.is_null() {
            // SAFETY: a free block holds the link to the next free block
            // in its first word, written by `dealloc`; blocks are 16-aligned.
            self.free[class] = unsafe { head.cast::<*mut u8>().read() };
            return head;
        }
        self.bump_alloc(1 << (class as u32 + MIN_SHIFT))
    }

    #[cold]
    fn refill(&mut self, size: usize) -> bool {
        // The tail of the old chunk is too small for this block; hand it to
        // the free lists so it is not lost.
        let mut tail = self.bump;
        let mut left = (self.bump_end as usize).saturating_sub(tail as usize);
        for class in (0..CLASSES).rev() {
            let block = 1usize << (class as u32 + MIN_SHIFT);
            while left >= block {
                // SAFETY: `tail..tail+block` lies in the unused part of the
                // chunk, 16-aligned since every block size is a multiple of 16.
                unsafe {
                    tail.cast::<*mut u8>().write(self.free[class]);
                    self.free[class] = tail;
                    tail = tail.add(block);
                }
                left -= block;
            }
        }
        // SAFETY: CHUNK is non-zero and a multiple of the alignment.
        let chunk = unsafe { System.alloc(Layout::from_size_align_unchecked(CHUNK, BLOCK_ALIGN)) };
        if chunk.is_null() {
            self.bump = ptr::null_mut();
            self.bump_end = ptr::null_mut();
            return false;
        }
        debug_assert!(size <= CHUNK);
        self.bump = chunk;
        // SAFETY: one past the end of the chunk just allocated.
        self.bump_end = unsafe { chunk.add(CHUNK) };
        true
    }

    #[inline]
    fn bump_alloc(&mut self, size: usize) -> *mut u8 {
        if (self.bump_end as usize) - (self.bump as usize) < size && !self.refill(size) {
            return ptr::null_mut();
        }
        let block = self.bump;
        // SAFETY: `size` bytes remain in the current chunk (checked above).
        self.bump = unsafe { block.add(size) };
        block
    }

    /// Free a block.
    ///
    /// # Safety
    /// As [`GlobalAlloc::dealloc`]: `block` came from this heap with `layout`.
    #[inline]
    pub unsafe fn dealloc(&mut self, block: *mut u8, layout: Layout) {
        match class_of(layout) {
            // SAFETY: the block is at least 16 bytes and 16-aligned.
            Some(class) => unsafe {
                block.cast::<*mut u8>().write(self.free[class]);
                self.free[class] = block;
            },
            // SAFETY: a large block came from the system allocator.
            None => unsafe { System.dealloc(block, layout) },
        }
    }

    /// Resize a block.
    ///
    /// # Safety
    /// As [`GlobalAlloc::realloc`].
    #[inline]
    pub unsafe fn realloc(&mut self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class_of(layout), class_of(new_layout)) {
            (Some(a), Some(b)) if a == b => block,
            // SAFETY: both large: the system allocator owns the block.
            (None, None) => unsafe { System.realloc(block, layout, new_size) },
            _ => {
                // SAFETY: allocate, copy the common prefix, free the old block.
                unsafe {
                    let new = self.alloc(new_layout);
                    if !new.is_null() {
                        ptr::copy_nonoverlapping(block, new, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                    new
                }
            }
        }
    }
}

/// [`Heap`] as the global allocator of a single-threaded Wasm plugin
/// (installed by [`crate::export!`]).
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[derive(Debug)]
pub struct SizeClassAllocator {
    heap: std::cell::UnsafeCell<Heap>,
}

// SAFETY: wasm32 without the `atomics` feature has exactly one thread, so the
// heap is never accessed concurrently; and no allocator method re-enters
// another (System does not call back into the global allocator).
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl Sync for SizeClassAllocator {}

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
impl SizeClassAllocator {
    /// An empty allocator.
    pub const fn new() -> Self {
        SizeClassAllocator {
            heap: std::cell::UnsafeCell::new(Heap::new()),
        }
    }
}

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
impl Default for SizeClassAllocator {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every method forwards to `Heap`, which upholds the GlobalAlloc
// contract; exclusive access is guaranteed by the single thread (see Sync).
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl GlobalAlloc for SizeClassAllocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl comment.
        unsafe { (*self.heap.get()).alloc(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: see the impl comment.
        unsafe { (*self.heap.get()).dealloc(block, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: see the impl comment.
        unsafe { (*self.heap.get()).realloc(block, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_round_up_to_powers_of_two() {
        let l = |size, align| Layout::from_size_align(size, align).unwrap();
        assert_eq!(class_of(l(0, 1)), Some(0));
        assert_eq!(class_of(l(16, 8)), Some(0));
        assert_eq!(class_of(l(17, 8)), Some(1));
        assert_eq!(class_of(l(32 * 1024, 16)), Some(CLASSES - 1));
        assert_eq!(class_of(l(32 * 1024 + 1, 16)), None);
        assert_eq!(class_of(l(8, 32)), None);
    }

    #[test]
    fn blocks_are_reused_and_kept_blocks_stay_valid() {
        let mut heap = Heap::new();
        let l = |size| Layout::from_size_align(size, 8).unwrap();
        unsafe {
            let kept = heap.alloc(l(100));
            kept.write_bytes(0xAB, 100);
            // A "batch": many temporaries of mixed sizes, then all freed.
            let mut temps = Vec::new();
            for i in 0..5000 {
                let size = 1 + (i * 37) % 5000;
                let p = heap.alloc(l(size));
                assert!(!p.is_null());
                assert_eq!(p as usize % BLOCK_ALIGN, 0);
                p.write_bytes(i as u8, size);
                temps.push((p, size, i as u8));
            }
            for &(p, size, v) in &temps {
                assert!(std::slice::from_raw_parts(p, size).iter().all(|b| *b == v));
            }
            let first: Vec<_> = temps.iter().map(|t| t.0).collect();
            for (p, size, _) in temps.drain(..) {
                heap.dealloc(p, l(size));
            }
            // The next "batch" gets the same blocks back.
            let again = heap.alloc(l(1 + (4999 * 37) % 5000));
            assert!(first.contains(&again));
            assert!(
                std::slice::from_raw_parts(kept, 100)
                    .iter()
                    .all(|b| *b == 0xAB)
            );
        }
    }

    #[test]
    fn realloc_keeps_contents_across_classes() {
        let mut heap = Heap::new();
        unsafe {
            let mut layout = Layout::from_size_align(10, 1).unwrap();
            let mut p = heap.alloc(layout);
            p.copy_from(b"0123456789".as_ptr(), 10);
            for new_size in [12, 100, 5000, 40_000, 100_000, 20] {
                p = heap.realloc(p, layout, new_size);
                assert!(!p.is_null());
                assert_eq!(std::slice::from_raw_parts(p, 10), b"0123456789");
                layout = Layout::from_size_align(new_size, 1).unwrap();
            }
            heap.dealloc(p, layout);
        }
    }
}
