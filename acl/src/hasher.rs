//! The threads that run argon2. Each hash takes 19 MiB and a core for tens of milliseconds;
//! running them on tokio's blocking pool would spread them over dozens of threads, and the
//! allocator keeps a freed 19 MiB block in the arena of every thread that ever hashed (hundreds
//! of MB of resident memory after a burst of first verifications). A few dedicated threads keep
//! that to one block each and bound how many hashes run at once.

use std::sync::{Mutex, mpsc};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

pub(crate) struct Hasher {
    jobs: Mutex<mpsc::Sender<Job>>,
}

/// The hashing threads are gone (only while the process is ending).
#[derive(Debug, thiserror::Error)]
#[error("the token hashing threads have stopped")]
pub(crate) struct HasherStopped;

impl Hasher {
    /// `threads` hashing threads (at least one), ending when the `Hasher` is dropped.
    pub fn new(threads: usize) -> Hasher {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("tdsync-argon2-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only to take the next job, never while running it.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a token hashing thread");
            }
        }
        Hasher {
            jobs: Mutex::new(tx),
        }
    }

    /// Runs `f` on a hashing thread once one is free.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HasherStopped> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs
            .lock()
            .map_err(|_| HasherStopped)?
            .send(job)
            .map_err(|_| HasherStopped)?;
        rx.await.map_err(|_| HasherStopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_the_hashing_threads_and_at_most_that_many_at_once() {
        let hasher = std::sync::Arc::new(Hasher::new(2));
        let running = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (hasher, running, most) = (hasher.clone(), running.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                hasher
                    .run(move || {
                        use std::sync::atomic::Ordering::SeqCst;
                        let now = running.fetch_add(1, SeqCst) + 1;
                        most.fetch_max(now, SeqCst);
                        let name = std::thread::current().name().map(String::from);
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        running.fetch_sub(1, SeqCst);
                        name
                    })
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            let name = t.await.unwrap().unwrap();
            assert!(name.starts_with("tdsync-argon2-"), "{name}");
        }
        assert!(most.load(std::sync::atomic::Ordering::SeqCst) <= 2);
    }
}
