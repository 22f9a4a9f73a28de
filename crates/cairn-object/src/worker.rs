//! Background work: one [`Worker`] trait for every loop a node runs beside
//! requests (the drive monitor, the healer, heal jobs, the scanner, the
//! janitor, stale-upload cleanup, the lock refresher; lifecycle next), and
//! [`Workers`], which runs them, shows their state and progress, pauses
//! them and stops them cleanly.
//!
//! A worker does its work in units ([`Worker::work`]): a unit is never
//! interrupted, except by the stop signal it is given, which it checks
//! where stopping leaves nothing half done. Between units it waits
//! ([`Worker::wait_for_work`]), and that wait is cancelled by a stop or a
//! pause. A unit that fails leaves the worker in [`WorkerState::Failed`]
//! with the error, and it tries again after a back-off.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What one unit of work found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// More work is waiting: the next unit runs at once.
    Busy,
    /// Nothing to do until [`Worker::wait_for_work`] returns.
    Idle,
    /// The worker has finished for good.
    Done,
}

/// A background loop.
#[async_trait]
pub trait Worker: Send + 'static {
    /// Its name, unique on a node.
    fn name(&self) -> &'static str;

    /// What it has done so far, as named counters.
    fn progress(&self) -> Vec<(&'static str, u64)>;

    /// One unit of work. `stop` turns true at shutdown: a long unit stops
    /// where it can leave nothing half done.
    async fn work(&mut self, stop: &watch::Receiver<bool>) -> Result<Step, String>;

    /// Waits until there may be work again (cancelled by a stop or a pause).
    async fn wait_for_work(&mut self);

    /// Runs once when the worker stops (at shutdown, or after
    /// [`Step::Done`]): to save what it keeps in memory.
    async fn stopped(&mut self) {}
}

/// What a worker is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerState {
    Running,
    Idle,
    Paused,
    /// Its last unit failed; it tries again after a back-off.
    Failed(String),
    /// It finished, or the node is shutting down.
    Stopped,
}

impl WorkerState {
    pub fn as_str(&self) -> &'static str {
        match self {
            WorkerState::Running => "running",
            WorkerState::Idle => "idle",
            WorkerState::Paused => "paused",
            WorkerState::Failed(_) => "failed",
            WorkerState::Stopped => "stopped",
        }
    }
}

/// A worker as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkerInfo {
    pub name: String,
    /// `running`, `idle`, `paused`, `failed` or `stopped`.
    pub state: String,
    /// The error of the last unit, while it is `failed`.
    pub error: Option<String>,
    /// Units that failed since the node started.
    pub errors: u64,
    /// Units done since the node started.
    pub units: u64,
    /// Unix milliseconds of the last change of state.
    pub since_ms: i64,
    pub progress: Vec<(String, u64)>,
}

/// One worker's shared status.
struct Entry {
    name: &'static str,
    status: Mutex<Status>,
    paused: watch::Sender<bool>,
}

struct Status {
    state: WorkerState,
    since_ms: i64,
    errors: u64,
    units: u64,
    progress: Vec<(&'static str, u64)>,
}

impl Entry {
    fn set(&self, state: WorkerState) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if status.state != state {
            status.state = state;
            status.since_ms = crate::util::now_ms();
        }
    }

    fn info(&self) -> WorkerInfo {
        let status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        WorkerInfo {
            name: self.name.to_owned(),
            state: status.state.as_str().to_owned(),
            error: match &status.state {
                WorkerState::Failed(err) => Some(err.clone()),
                _ => None,
            },
            errors: status.errors,
            units: status.units,
            since_ms: status.since_ms,
            progress: status
                .progress
                .iter()
                .map(|(name, value)| ((*name).to_owned(), *value))
                .collect(),
        }
    }
}

/// The first back-off after a failed unit; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The workers of a node.
pub struct Workers {
    stop: watch::Receiver<bool>,
    entries: Mutex<Vec<(Arc<Entry>, JoinHandle<()>)>>,
}

impl Workers {
    /// Workers that stop when `stop` turns true.
    pub fn new(stop: watch::Receiver<bool>) -> Arc<Workers> {
        Arc::new(Workers {
            stop,
            entries: Mutex::new(Vec::new()),
        })
    }

    /// Starts `worker`.
    pub fn spawn(&self, mut worker: impl Worker) {
        let (paused_tx, mut paused) = watch::channel(false);
        let entry = Arc::new(Entry {
            name: worker.name(),
            status: Mutex::new(Status {
                state: WorkerState::Idle,
                since_ms: crate::util::now_ms(),
                errors: 0,
                units: 0,
                progress: worker.progress(),
            }),
            paused: paused_tx,
        });
        let mut stop = self.stop.clone();
        let status = entry.clone();
        let task = tokio::spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                if *stop.borrow() {
                    break;
                }
                if *paused.borrow() {
                    status.set(WorkerState::Paused);
                    tokio::select! {
                        _ = paused.changed() => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
                status.set(WorkerState::Running);
                let result = worker.work(&stop).await;
                {
                    let mut s = status.status.lock().unwrap_or_else(|e| e.into_inner());
                    s.progress = worker.progress();
                    s.units += 1;
                    if result.is_err() {
                        s.errors += 1;
                    }
                }
                match result {
                    Ok(Step::Busy) => backoff = FIRST_BACKOFF,
                    Ok(Step::Idle) => {
                        backoff = FIRST_BACKOFF;
                        status.set(WorkerState::Idle);
                        tokio::select! {
                            _ = worker.wait_for_work() => {}
                            _ = paused.changed() => {}
                            _ = stop.changed() => {}
                        }
                    }
                    Ok(Step::Done) => break,
                    Err(err) => {
                        tracing::warn!(worker = status.name, %err, retry_in = ?backoff, "background worker failed");
                        status.set(WorkerState::Failed(err));
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = stop.changed() => {}
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
            worker.stopped().await;
            status.set(WorkerState::Stopped);
        });
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((entry, task));
    }

    /// Every worker, in the order started.
    pub fn list(&self) -> Vec<WorkerInfo> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(entry, _)| entry.info())
            .collect()
    }

    /// Pauses or resumes the worker `name` (after its current unit);
    /// false when there is none of that name.
    pub fn pause(&self, name: &str, paused: bool) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut found = false;
        for (entry, _) in entries.iter().filter(|(e, _)| e.name == name) {
            entry.paused.send_replace(paused);
            found = true;
        }
        found
    }

    /// Waits for every worker to stop (after the stop signal, each
    /// finishes or abandons its unit cleanly).
    pub async fn join(&self) {
        let tasks: Vec<(&'static str, JoinHandle<()>)> = self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .map(|(entry, task)| (entry.name, task))
            .collect();
        for (name, task) in tasks {
            if let Err(err) = task.await {
                tracing::error!(worker = name, %err, "background worker ended abnormally");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Counts units; fails its second unit; busy for three units, then idle.
    struct Counter {
        done: Arc<AtomicU64>,
        wake: Arc<tokio::sync::Notify>,
    }

    #[async_trait]
    impl Worker for Counter {
        fn name(&self) -> &'static str {
            "counter"
        }

        fn progress(&self) -> Vec<(&'static str, u64)> {
            vec![("done", self.done.load(Ordering::Relaxed))]
        }

        async fn work(&mut self, _stop: &watch::Receiver<bool>) -> Result<Step, String> {
            let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
            match n {
                2 => Err("disk on fire".to_owned()),
                1 | 3 => Ok(Step::Busy),
                _ => Ok(Step::Idle),
            }
        }

        async fn wait_for_work(&mut self) {
            self.wake.notified().await
        }
    }

    async fn until(workers: &Workers, state: &str) -> WorkerInfo {
        for _ in 0..2000 {
            let info = workers.list().remove(0);
            if info.state == state {
                return info;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("never {state}: {:?}", workers.list());
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_shows_its_state_progress_and_failures_and_stops_cleanly() {
        let (stop_tx, stop) = watch::channel(false);
        let workers = Workers::new(stop);
        let done = Arc::new(AtomicU64::new(0));
        let wake = Arc::new(tokio::sync::Notify::new());
        workers.spawn(Counter {
            done: done.clone(),
            wake: wake.clone(),
        });
        let failed = until(&workers, "failed").await;
        assert_eq!(failed.error.as_deref(), Some("disk on fire"));
        assert_eq!(failed.errors, 1);
        // It tries again after its back-off and goes idle after unit 4.
        let idle = until(&workers, "idle").await;
        assert_eq!(idle.progress, vec![("done".to_owned(), 4)]);
        assert_eq!(idle.error, None);

        assert!(workers.pause("counter", true));
        until(&workers, "paused").await;
        assert!(!workers.pause("no-such-worker", true));
        let before = done.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            done.load(Ordering::Relaxed),
            before,
            "a paused worker does nothing"
        );
        workers.pause("counter", false);
        until(&workers, "idle").await;
        assert_eq!(done.load(Ordering::Relaxed), before + 1);

        stop_tx.send_replace(true);
        workers.join().await;
        assert!(workers.list().is_empty());
    }
}
