//! The threads image work runs on: a few of their own, instead of the runtime's pool of
//! blocking threads. Each thread's allocator keeps what a decode freed for the next one, so
//! a fixed handful of threads holds at most a handful of decodes' worth of memory; spread
//! over the hundreds of blocking threads a burst of uploads starts, the same decodes kept
//! hundreds of MiB resident after they were done.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// A fixed number of threads taking jobs in turn.
#[derive(Debug)]
pub(crate) struct Workers {
    jobs: Sender<Job>,
}

/// The job's thread went away before it answered (it panicked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lost;

impl Workers {
    /// Starts `threads` threads named `name`; they end when the last handle is dropped.
    pub(crate) fn start(threads: usize, name: &str) -> std::io::Result<Self> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new().name(name.to_owned()).spawn(move || work(&queue))?;
        }
        Ok(Self { jobs })
    }

    /// Runs `job` on one of the threads, once one is free.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Lost> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = answer.send(job());
        });
        self.jobs.send(job).map_err(|_| Lost)?;
        answered.await.map_err(|_| Lost)
    }
}

fn work(queue: &Mutex<Receiver<Job>>) {
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        // A decoder that panics fails its own upload, not the thread.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_the_threads_and_a_panic_costs_only_its_job() {
        let workers = Workers::start(1, "test-worker").unwrap();
        let name = workers.run(|| std::thread::current().name().map(str::to_owned)).await;
        assert_eq!(name.unwrap().as_deref(), Some("test-worker"));
        assert_eq!(workers.run(|| -> u8 { panic!("a broken decoder") }).await, Err(Lost));
        assert_eq!(workers.run(|| 7).await, Ok(7), "the thread survived");
    }
}
