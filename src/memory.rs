//! Giving memory back to the system after a burst. glibc's malloc keeps what is freed in its
//! arenas for reuse and returns only the free top of each heap, so after a load the process
//! keeps its peak size. `malloc_trim` returns every free page (glibc 2.8 and later), and
//! costs a few milliseconds; the server calls it every few seconds, off the reactor.

/// Returns the allocator's free pages to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_freed() {
    // SAFETY: malloc_trim only walks glibc's own arenas; it takes their locks itself.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators and systems give freed memory back themselves.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_freed() {}
