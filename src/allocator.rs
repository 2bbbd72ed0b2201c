//! The process's memory allocator: mimalloc, asked through its plain entry points for
//! the usual word-aligned allocations.
//!
//! glibc's malloc was about a tenth of all CPU time under load (each request allocates
//! header maps and buffers); mimalloc's thread-local free lists make that much cheaper. The
//! `mimalloc` crate passes every allocation to `mi_malloc_aligned`, whose fast path only
//! covers blocks up to 1 KiB: a larger block whose size class is not a power of two (a
//! 4 KiB read buffer is fine, 1.5 KiB is not) went through over-allocation, a dozen times
//! per proxied request, although every mimalloc block is word-aligned anyway.
//! Built with `no_thp`: mimalloc otherwise asks for transparent huge pages on its arenas,
//! which doubled resident memory (27 -> 14 MiB under load) for no measurable speed.

use libmimalloc_sys::{mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned};
use libmimalloc_sys::{mi_zalloc, mi_zalloc_aligned};
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// Whether any mimalloc block suits `layout`: every block is aligned to at least a word.
fn plain(layout: &Layout) -> bool {
    layout.align() <= std::mem::size_of::<usize>()
}

/// mimalloc as the global allocator (`#[global_allocator]` in the binary).
pub struct Mimalloc;

// SAFETY: mimalloc's entry points honour the GlobalAlloc contract: the plain ones return
// blocks aligned to at least a word, which is all they are used for, and the aligned
// ones any power-of-two alignment; `mi_free` takes blocks from either.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe {
            match plain(&layout) {
                true => mi_malloc(layout.size()),
                false => mi_malloc_aligned(layout.size(), layout.align()),
            }
            .cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe {
            match plain(&layout) {
                true => mi_zalloc(layout.size()),
                false => mi_zalloc_aligned(layout.size(), layout.align()),
            }
            .cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        unsafe { mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe {
            match plain(&layout) {
                true => mi_realloc(ptr.cast(), new_size),
                false => mi_realloc_aligned(ptr.cast(), new_size, layout.align()),
            }
            .cast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_have_the_alignment_asked_for() {
        let a = Mimalloc;
        for size in [1, 7, 24, 1000, 1500, 5000, 70_000] {
            for align in [1, 8, 16, 64, 4096] {
                let layout = Layout::from_size_align(size, align).unwrap();
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    p.write_bytes(0xa5, size);
                    let q = a.realloc(p, layout, size * 2);
                    assert_eq!(q as usize % align, 0, "realloc size {size} align {align}");
                    assert_eq!(*q.add(size - 1), 0xa5);
                    a.dealloc(q, Layout::from_size_align(size * 2, align).unwrap());
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!((0..size).all(|i| *z.add(i) == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
