//! A small pool of threads for the file I/O the epoll backend can't make non-blocking.

use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

type Job = Box<dyn FnOnce() + Send>;

/// Threads that run blocking jobs in submission order (per thread). Dropping the pool lets the
/// threads finish the jobs already queued, then joins them.
pub(crate) struct BlockingPool {
    sender: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl BlockingPool {
    pub(crate) fn new(threads: usize) -> std::io::Result<Self> {
        let (sender, receiver): (Sender<Job>, Receiver<Job>) = crossbeam_channel::unbounded();
        let threads = (0..threads.max(1))
            .map(|i| {
                let receiver = receiver.clone();
                std::thread::Builder::new()
                    .name(format!("runnel-blocking-{i}"))
                    .spawn(move || {
                        while let Ok(job) = receiver.recv() {
                            job();
                        }
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BlockingPool {
            sender: Some(sender),
            threads,
        })
    }

    pub(crate) fn execute(&self, job: Job) {
        if let Some(sender) = &self.sender {
            // The receivers live as long as the pool, so sending can't fail while we hold it.
            let _ = sender.send(job);
        }
    }
}

impl Drop for BlockingPool {
    fn drop(&mut self) {
        self.sender.take();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
