//! The allocator, and giving memory back to the system after a burst.
//!
//! The server binary allocates with jemalloc (its `#[global_allocator]` is in main.rs, so
//! the tests' counting allocator and the fuzz targets' sanitizers keep their own). Its spans
//! are many small blocks, allocated on the receivers' threads and freed on the
//! sessionizer's; under the ingest benchmark glibc's malloc and free took about a quarter of
//! convolog's CPU, and with jemalloc the server takes a sixth less CPU per span at a lower
//! peak (README, "jemalloc, and what scattered trace ids show").
//!
//! Freed pages stay with the allocator for reuse until it decays them, so after a load the
//! server would keep its peak size for a while. [`release_freed`] purges them at once, costs
//! a few milliseconds, and the server calls it every few seconds, off the reactor.

/// Returns the allocator's free pages to the system.
pub fn release_freed() {
    // Every arena: MALLCTL_ARENAS_ALL.
    const PURGE_ALL_ARENAS: &[u8] = b"arena.4096.purge\0";
    // SAFETY: a purge takes no argument and returns none (both pointers null); jemalloc
    // takes its arenas' locks itself. It fails only for a name it does not know.
    let failed = unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL_ARENAS.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    if failed != 0 {
        tracing::warn!(
            code = failed,
            "the allocator did not release its free pages"
        );
    }
}
