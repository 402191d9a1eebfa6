//! A future on a thread of its own, for measurements that put each side of a connection on a
//! core (tests/conn_memory.rs, benches/throughput.rs).

/// Runs `f` on a thread of its own with a current-thread runtime.
pub fn on_thread<T: Send + 'static>(
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(f())
    })
}
