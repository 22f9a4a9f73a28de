//! Fan-outs to the drives of a set through the quorum helper
//! ([`crate::quorum`]), and what their answers come to: counts, per-drive
//! errors, and the error of a write or read that missed its quorum.

use std::future::Future;
use std::sync::Arc;

use cairn_disk::{Disk, DiskError};

use crate::error::{Error, Result};
use crate::quorum::{self, Strategy};

/// Write quorum for a layout: data shards, plus one when data equals parity,
/// so that two partitions can never both accept writes (docs/design.md section 4).
pub(crate) fn write_quorum(data_shards: usize, parity_shards: usize) -> usize {
    data_shards + usize::from(data_shards == parity_shards)
}

/// The error of a write that reached `ok` drives where `needed` were
/// required: [`Error::StorageFull`] when the drives that are full alone
/// kept it from write quorum, else [`Error::WriteQuorum`].
pub(crate) fn write_failed<T>(
    disks: &[Arc<dyn Disk>],
    results: &[Result<T, DiskError>],
    ok: usize,
    needed: usize,
) -> Error {
    let full = results
        .iter()
        .filter(|r| matches!(r, Err(DiskError::Full(_))))
        .count();
    let errors = describe_errors(disks, results);
    if full > 0 && results.len() - full < needed {
        Error::StorageFull {
            full,
            needed,
            errors,
        }
    } else {
        Error::WriteQuorum { ok, needed, errors }
    }
}

/// Runs `op` on every drive at once, waiting as `strategy` says; answers
/// come back in slot order, a drive that was not waited for counted as
/// offline for this request ([`crate::quorum`] says what is guaranteed).
pub(crate) async fn fan_out<'a, T, F, Fut>(
    disks: &'a [Arc<dyn Disk>],
    strategy: Strategy,
    op: F,
) -> DriveAnswers<T>
where
    F: Fn(usize, &'a Arc<dyn Disk>) -> Fut,
    Fut: Future<Output = Result<T, DiskError>>,
{
    let calls = disks.iter().enumerate().map(|(idx, disk)| op(idx, disk));
    let answers = quorum::call_many(calls, strategy).await;
    DriveAnswers(answers.into_results(|_| not_waited_for()))
}

/// The error of a drive a fan-out stopped waiting for.
pub(crate) fn not_waited_for() -> DiskError {
    DiskError::Offline("did not answer before its request went on without it".to_owned())
}

/// What each drive of a fan-out answered, in slot order.
pub(crate) struct DriveAnswers<T>(pub(crate) Vec<Result<T, DiskError>>);

impl<T> std::ops::Deref for DriveAnswers<T> {
    type Target = [Result<T, DiskError>];

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<T> DriveAnswers<T> {
    /// Drives that succeeded.
    pub(crate) fn ok(&self) -> usize {
        self.0.iter().filter(|r| r.is_ok()).count()
    }

    /// Drives that failed with an error `matches` picks.
    pub(crate) fn failed_with(&self, matches: impl Fn(&DiskError) -> bool) -> usize {
        self.0
            .iter()
            .filter(|r| r.as_ref().is_err_and(&matches))
            .count()
    }

    /// The per-drive failures, for errors and logs.
    pub(crate) fn errors(&self, disks: &[Arc<dyn Disk>]) -> Vec<String> {
        describe_errors(disks, &self.0)
    }

    /// `Ok` when at least `needed` drives succeeded, else the write's error
    /// ([`write_failed`]).
    pub(crate) fn check_write(&self, disks: &[Arc<dyn Disk>], needed: usize) -> Result<()> {
        DriveAnswers::check_write_of(&self.0, disks, needed)
    }

    /// [`DriveAnswers::check_write`] of answers gathered otherwise.
    pub(crate) fn check_write_of(
        results: &[Result<T, DiskError>],
        disks: &[Arc<dyn Disk>],
        needed: usize,
    ) -> Result<()> {
        let ok = results.iter().filter(|r| r.is_ok()).count();
        if ok >= needed {
            return Ok(());
        }
        Err(write_failed(disks, results, ok, needed))
    }

    /// `Ok` when at least `needed` drives answered, else a read-quorum error.
    pub(crate) fn check_read(&self, disks: &[Arc<dyn Disk>], needed: usize) -> Result<()> {
        let ok = self.ok();
        if ok >= needed {
            return Ok(());
        }
        Err(Error::ReadQuorum {
            ok,
            needed,
            errors: self.errors(disks),
        })
    }

    pub(crate) fn into_vec(self) -> Vec<Result<T, DiskError>> {
        self.0
    }
}

/// Describes the per-drive failures of a fan-out, for error messages and logs.
pub(crate) fn describe_errors<T>(
    disks: &[Arc<dyn Disk>],
    results: &[Result<T, DiskError>],
) -> Vec<String> {
    results
        .iter()
        .zip(disks)
        .filter_map(|(res, disk)| {
            res.as_ref()
                .err()
                .map(|err| format!("{}: {err}", disk.endpoint()))
        })
        .collect()
}
