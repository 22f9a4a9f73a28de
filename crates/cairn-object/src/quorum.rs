//! One helper for every fan-out: calls to the drives of a set, or to the
//! nodes that hold a lock, gathered under an explicit [`Strategy`].
//!
//! The calls run concurrently; the helper returns their answers by index,
//! each `Ok`, `Err`, or absent when the call had not answered by the time
//! the fan-out ended. What it does *not* guarantee:
//! * that a call it stopped waiting for did not take effect: a write sent
//!   to a drive may still land after its caller moved on (the caller
//!   rolls back or queues a heal for such drives, never assumes either way);
//! * any order between calls, or between fan-outs to one drive;
//! * that a call ends by itself: each drive call carries its own deadline
//!   (`cairn_disk::WatchedDisk`), and the strategy's deadline is the
//!   backstop for callees that have none.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};

/// How a fan-out waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strategy {
    /// Successful answers the caller needs.
    pub needed: usize,
    /// Whether to keep waiting once `needed` calls succeeded (or once so
    /// many failed that `needed` cannot be reached): writes wait, since the
    /// caller acts on every drive's outcome; reads and lock grants do not.
    pub wait_for_rest: bool,
    /// The longest the fan-out waits in all; calls unanswered by then are
    /// left out of its answers.
    pub deadline: Option<Duration>,
}

impl Strategy {
    /// Every call's answer, each bounded by its callee's own deadline.
    pub const fn all() -> Strategy {
        Strategy {
            needed: usize::MAX,
            wait_for_rest: true,
            deadline: None,
        }
    }

    /// Returns as soon as `needed` calls succeeded, or cannot.
    pub const fn quorum(needed: usize) -> Strategy {
        Strategy {
            needed,
            wait_for_rest: false,
            deadline: None,
        }
    }

    pub const fn with_deadline(self, deadline: Duration) -> Strategy {
        Strategy {
            deadline: Some(deadline),
            ..self
        }
    }

    fn verdict<T, E>(&self, answers: &Answers<T, E>) -> Verdict {
        if answers.pending() == 0 {
            return Verdict::Done;
        }
        let ok = answers.ok();
        if !self.wait_for_rest && (ok >= self.needed || ok + answers.pending() < self.needed) {
            return Verdict::Done;
        }
        Verdict::Wait
    }
}

/// What a fan-out's judge says after each answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep waiting.
    Wait,
    /// The outcome is settled: return now.
    Done,
    /// Return at this time at the latest, or at once when everything has
    /// answered (a grace for answers that would be nice to have).
    DoneBy(Instant),
}

/// The answers of one fan-out, by the index of their call.
#[derive(Debug)]
pub struct Answers<T, E> {
    results: Vec<Option<Result<T, E>>>,
    pending: usize,
}

impl<T, E> Answers<T, E> {
    /// Answers as a fan-out would have gathered them (`None`: pending).
    #[cfg(test)]
    pub(crate) fn from_options(results: Vec<Option<Result<T, E>>>) -> Answers<T, E> {
        let pending = results.iter().filter(|r| r.is_none()).count();
        Answers { results, pending }
    }

    /// Calls that answered with success.
    pub fn ok(&self) -> usize {
        self.results
            .iter()
            .filter(|r| matches!(r, Some(Ok(_))))
            .count()
    }

    /// Calls that had not answered when the fan-out ended.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Each call's answer; `None` for calls that had not answered.
    pub fn results(&self) -> &[Option<Result<T, E>>] {
        &self.results
    }

    /// Each call's answer; `None` for calls that had not answered.
    pub fn into_options(self) -> Vec<Option<Result<T, E>>> {
        self.results
    }

    /// The answers, with `late(index)` standing for each call that had not
    /// answered.
    pub fn into_results(self, mut late: impl FnMut(usize) -> E) -> Vec<Result<T, E>> {
        self.results
            .into_iter()
            .enumerate()
            .map(|(idx, r)| r.unwrap_or_else(|| Err(late(idx))))
            .collect()
    }
}

/// Runs `calls` concurrently until `judge` says the outcome is settled,
/// every call answered, or `deadline` passed.
pub async fn gather<T, E, Fut>(
    calls: impl IntoIterator<Item = Fut>,
    deadline: Option<Duration>,
    judge: impl FnMut(&Answers<T, E>) -> Verdict,
) -> Answers<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let mut running: FuturesUnordered<_> = calls
        .into_iter()
        .enumerate()
        .map(|(idx, call)| async move { (idx, call.await) })
        .collect();
    wait(&mut running, deadline, judge).await
}

/// The calls a fan-out left running, yielding `(index, answer)` as they end.
pub type Rest<'a, T, E> = FuturesUnordered<BoxFuture<'a, (usize, Result<T, E>)>>;

/// [`gather`], also returning the calls still running, for a caller that
/// wants their answers later (each call is boxed for it).
pub async fn gather_keeping_rest<'a, T, E, Fut>(
    calls: impl IntoIterator<Item = Fut>,
    deadline: Option<Duration>,
    judge: impl FnMut(&Answers<T, E>) -> Verdict,
) -> (Answers<T, E>, Rest<'a, T, E>)
where
    Fut: Future<Output = Result<T, E>> + Send + 'a,
    T: Send + 'a,
    E: Send + 'a,
{
    let mut running: Rest<'a, T, E> = calls
        .into_iter()
        .enumerate()
        .map(|(idx, call)| -> BoxFuture<'a, (usize, Result<T, E>)> {
            Box::pin(async move { (idx, call.await) })
        })
        .collect();
    let answers = wait(&mut running, deadline, judge).await;
    (answers, running)
}

/// Takes answers from `running` until `judge` settles, all answered, or
/// `deadline` passed.
async fn wait<T, E, F>(
    running: &mut FuturesUnordered<F>,
    deadline: Option<Duration>,
    mut judge: impl FnMut(&Answers<T, E>) -> Verdict,
) -> Answers<T, E>
where
    F: Future<Output = (usize, Result<T, E>)>,
{
    let mut answers = Answers {
        results: (0..running.len()).map(|_| None).collect(),
        pending: running.len(),
    };
    let mut stop_at = deadline.map(|d| Instant::now() + d);
    loop {
        match judge(&answers) {
            Verdict::Done => break,
            Verdict::DoneBy(at) => stop_at = Some(stop_at.map_or(at, |s| s.min(at))),
            Verdict::Wait => {}
        }
        if answers.pending == 0 {
            break;
        }
        let next = match stop_at {
            None => running.next().await,
            Some(at) => match tokio::time::timeout_at(at, running.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
        };
        let Some((idx, result)) = next else { break };
        answers.results[idx] = Some(result);
        answers.pending -= 1;
    }
    answers
}

/// Runs `calls` concurrently as `strategy` says.
pub async fn call_many<T, E, Fut>(
    calls: impl IntoIterator<Item = Fut>,
    strategy: Strategy,
) -> Answers<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    gather(calls, strategy.deadline, |answers| {
        strategy.verdict(answers)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call answering `result` after `ms` milliseconds.
    async fn after(ms: u64, result: Result<u32, &'static str>) -> Result<u32, &'static str> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        result
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_all_takes_every_answer_in_call_order() {
        let answers = call_many(
            [after(30, Ok(1)), after(10, Err("broken")), after(20, Ok(3))],
            Strategy::all(),
        )
        .await;
        assert_eq!(answers.ok(), 2);
        assert_eq!(answers.pending(), 0);
        assert_eq!(
            answers.into_results(|_| "late"),
            vec![Ok(1), Err("broken"), Ok(3)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_quorum_does_not_wait_for_the_slow_rest() {
        let started = Instant::now();
        let answers = call_many(
            [after(10, Ok(1)), after(10_000, Ok(2)), after(20, Ok(3))],
            Strategy::quorum(2),
        )
        .await;
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(answers.ok(), 2);
        assert_eq!(answers.pending(), 1);
        assert!(answers.results()[1].is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_quorum_that_cannot_be_reached_returns_early() {
        let answers = call_many(
            [
                after(10, Err("a")),
                after(20, Err("b")),
                after(10_000, Ok(3)),
            ],
            Strategy::quorum(2),
        )
        .await;
        assert_eq!(answers.ok(), 0);
        assert_eq!(answers.pending(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_bounds_every_strategy() {
        let started = Instant::now();
        let answers = call_many(
            [after(10, Ok(1)), after(3_600_000, Ok(2))],
            Strategy::all().with_deadline(Duration::from_secs(2)),
        )
        .await;
        assert!(started.elapsed() <= Duration::from_millis(2_100));
        assert_eq!(
            answers.into_results(|idx| if idx == 1 { "late" } else { "?" }),
            vec![Ok(1), Err("late")]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_grace_waits_for_wanted_answers_only_so_long() {
        let started = Instant::now();
        let answers = gather(
            [after(10, Ok(1)), after(5_000, Ok(2))],
            None,
            |answers: &Answers<u32, &str>| {
                if answers.ok() >= 1 {
                    Verdict::DoneBy(started + Duration::from_millis(50))
                } else {
                    Verdict::Wait
                }
            },
        )
        .await;
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(answers.ok(), 1);
    }
}
