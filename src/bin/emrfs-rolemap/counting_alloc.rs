//! A global allocator that counts the heap bytes one piece of code allocates, so that memory figures are
//! counted, not estimated. Shared by the CLI (`bench`) and the criterion benchmarks (`#[path]`-included
//! there).
//!
//! It counts only inside [`counted`], on the thread that calls it: every other allocation — every other
//! thread's, and every command but `bench`'s measurement, `serve` and any server a benchmark starts
//! included — goes straight to the system allocator after one read of a thread-local flag, and touches
//! no shared counter.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting on the threads that run [`counted`].
pub struct CountingAllocator;

thread_local! {
    /// Bytes allocated minus bytes freed on this thread while it counts; `None` while it does not.
    /// A `const` thread-local without a destructor: reading it never allocates.
    static COUNT: Cell<Option<isize>> = const { Cell::new(None) };
}

/// Runs `work` and returns its result with the heap bytes it left allocated on this thread (what it
/// allocated minus what it freed; negative when it freed more than it allocated).
pub fn counted<R>(work: impl FnOnce() -> R) -> (R, isize) {
    COUNT.with(|count| count.set(Some(0)));
    let result = work();
    let bytes = COUNT.with(|count| count.replace(None)).unwrap_or(0);
    (result, bytes)
}

/// Adds `bytes` to this thread's count, if it counts.
fn add(bytes: isize) {
    let _ = COUNT.try_with(|count| {
        if let Some(n) = count.get() {
            count.set(Some(n + bytes));
        }
    });
}

fn signed(size: usize) -> isize {
    isize::try_from(size).unwrap_or(isize::MAX)
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the count only
// observes sizes.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is `System`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(signed(layout.size()));
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is `System`'s.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            add(signed(layout.size()));
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.dealloc(ptr, layout) };
        add(-signed(layout.size()));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract is `System`'s.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add(signed(new_size) - signed(layout.size()));
        }
        p
    }
}
