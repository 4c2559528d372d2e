//! The process's allocator: mimalloc, asked for a plain block wherever a plain block is
//! aligned enough.
//!
//! The `mimalloc` crate's allocator passes every allocation to `mi_malloc_aligned`. In
//! mimalloc 3 that is as fast as `mi_malloc` only when the free block at hand happens to
//! be aligned or the block's size is a power of two; otherwise a 24-, 48- or 80-byte
//! request is over-allocated by its alignment, and its page marked as holding interior
//! pointers. On q1, one allocation in seven of the 7,100 a request makes went that way
//! (BENCHMARKS.md, "Allocations asked of mimalloc as plain blocks, and rows read straight
//! from sqlx"). A block `mi_malloc` gives is aligned as C's `malloc` must align it: to 16
//! bytes (`MI_MAX_ALIGN_SIZE`) from 16 bytes up, and to 8 below. So a layout aligned to at
//! most 16 and to no more than its size takes the plain functions, the rule the standard
//! library's own `System` allocator follows over C's `malloc`; any other layout keeps the
//! aligned ones. Every block, either way, is freed by `mi_free`.

use std::{
    alloc::{GlobalAlloc, Layout},
    ffi::c_void,
};

use libmimalloc_sys as mi;

/// The alignment every block `mi_malloc` returns has, from this size up.
const PLAIN_ALIGN: usize = 16;

/// mimalloc, through its plain functions where they give the alignment asked for.
pub struct MiMalloc;

/// Whether a block of `size` bytes from the plain functions is aligned to `align`.
#[inline(always)]
fn plain_is_aligned(size: usize, align: usize) -> bool {
    align <= PLAIN_ALIGN && align <= size
}

// SAFETY: every function returns a block of mimalloc's of at least the layout's size and
// aligned to its alignment (the plain functions only where `plain_is_aligned` holds), or
// null; `dealloc` and `realloc` take only blocks these functions returned, which `mi_free`
// and `mi_realloc` accept whichever function made them.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's allocation functions accept any size and power-of-two alignment.
        unsafe {
            if plain_is_aligned(layout.size(), layout.align()) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe {
            if plain_is_aligned(layout.size(), layout.align()) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the caller passes a block this allocator returned and has not freed.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller passes a block this allocator returned and has not freed; the
        // new block keeps the layout's alignment, by the same rule as `alloc`.
        unsafe {
            if plain_is_aligned(new_size, layout.align()) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALIGNS: [usize; 9] = [1, 2, 4, 8, 16, 32, 64, 256, 4096];

    /// Sizes around every small bin of mimalloc's and a few large ones.
    fn sizes() -> impl Iterator<Item = usize> {
        (1..=1100).chain([4095, 4096, 4097, 65_536, 70_000, 1 << 20, (1 << 22) + 24])
    }

    fn layouts() -> impl Iterator<Item = Layout> {
        sizes().flat_map(|size| {
            ALIGNS.into_iter().filter_map(move |align| {
                let size = size.next_multiple_of(align);
                Layout::from_size_align(size, align).ok()
            })
        })
    }

    fn is_aligned(ptr: *mut u8, align: usize) -> bool {
        !ptr.is_null() && (ptr as usize).is_multiple_of(align)
    }

    #[test]
    fn every_block_is_aligned_as_its_layout_asks_and_holds_what_is_written() {
        // Many blocks alive at once, so that pages fill and fresh ones are started.
        let blocks: Vec<(*mut u8, Layout)> = layouts()
            .map(|layout| {
                // SAFETY: a layout of non-zero size; the block is written within its size.
                let ptr = unsafe { MiMalloc.alloc(layout) };
                assert!(is_aligned(ptr, layout.align()), "{layout:?} gave {ptr:p}");
                unsafe { ptr.write_bytes(0xa5, layout.size()) };
                (ptr, layout)
            })
            .collect();

        for (ptr, layout) in blocks {
            // SAFETY: each block was returned by `alloc` with this layout and written whole.
            unsafe {
                assert_eq!(*ptr.add(layout.size() - 1), 0xa5);
                MiMalloc.dealloc(ptr, layout);
            }
        }
    }

    #[test]
    fn a_zeroed_block_is_aligned_and_zero() {
        for layout in layouts().step_by(7) {
            // SAFETY: a layout of non-zero size; the block is read within its size.
            unsafe {
                let ptr = MiMalloc.alloc_zeroed(layout);
                assert!(is_aligned(ptr, layout.align()), "{layout:?} gave {ptr:p}");
                assert!(std::slice::from_raw_parts(ptr, layout.size()).iter().all(|&byte| byte == 0));
                MiMalloc.dealloc(ptr, layout);
            }
        }
    }

    #[test]
    fn a_reallocated_block_keeps_its_alignment_and_its_bytes() {
        for layout in layouts().step_by(5) {
            let align = layout.align();
            for new_size in [align, layout.size() / 2, layout.size() * 3 + align, 100_000] {
                let new_size = new_size.max(1).next_multiple_of(align);
                // SAFETY: the block is written within its size, grown or shrunk to a size
                // that is a multiple of its alignment, and read within the smaller size.
                unsafe {
                    let ptr = MiMalloc.alloc(layout);
                    for i in 0..layout.size() {
                        *ptr.add(i) = i as u8;
                    }
                    let moved = MiMalloc.realloc(ptr, layout, new_size);
                    assert!(is_aligned(moved, align), "{layout:?} to {new_size} gave {moved:p}");
                    let kept = layout.size().min(new_size);
                    assert!((0..kept).all(|i| *moved.add(i) == i as u8), "{layout:?} to {new_size}");
                    MiMalloc.dealloc(moved, Layout::from_size_align_unchecked(new_size, align));
                }
            }
        }
    }
}
