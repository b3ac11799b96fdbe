//! What every fuzz target links: a global allocator that aborts on any single allocation above
//! `ALLOCATION_CAP`, so a length field trusted before its bytes arrive is a crash even in a
//! build without AddressSanitizer.
//!
//! libFuzzer's own `-malloc_limit_mb` check needs a sanitizer's malloc hooks; without one (the
//! test command's stable build, `--sanitizer none`) a 4 GiB `reserve` whose pages are never
//! touched passes unseen, as the out-of-memory bug fixed in `decode_frame` would have. The abort
//! is a crash to libFuzzer, which writes the input to the artifacts directory.

use std::alloc::{GlobalAlloc, Layout, System};

/// Far above anything the codec or the broker should ask for at once for a fuzz input (inputs
/// are at most a few KiB; the frame decoder reserves at most 1 MiB ahead of what it received)
/// and far below what the out-of-memory bug asked for.
pub const ALLOCATION_CAP: usize = 256 << 20;

/// `System`, refusing by abort any allocation larger than `ALLOCATION_CAP`.
pub struct CappedAllocator;

impl CappedAllocator {
    fn check(size: usize) {
        if size > ALLOCATION_CAP {
            // No allocation here: eprintln! with a plain string and integer formats into
            // stderr's own buffer.
            eprintln!(
                "==ottermq-fuzz== allocation of {size} bytes exceeds the {ALLOCATION_CAP}-byte cap"
            );
            std::process::abort();
        }
    }
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds
// `GlobalAlloc`'s contract; `check` only reads the size and never returns memory, so the
// pointers and layouts the callers see are exactly System's.
unsafe impl GlobalAlloc for CappedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::check(layout.size());
        // SAFETY: the caller's layout contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::check(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from System (every allocation goes through it) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::check(new_size);
        // SAFETY: `ptr` came from System with `layout`; the caller upholds `new_size`'s rules.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;
