//! Listing: merge the ordered scans of every drive of a set, resolving each
//! key by quorum, then merge the sets (docs/design.md section 4).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cairn_disk::{Disk, DiskError, ListEntry, ListQuery, ReadData, ReadObject};
use futures::future::join_all;

use crate::error::{Error, Result};
use crate::quorum::{self, Strategy};
use crate::set::{ErasureSet, not_waited_for, resolve};
use crate::types::{ListOptions, ObjectInfo};
use crate::types::{into_object_info, object_info};

/// What a drive's cursor says when the bucket is not on it.
const BUCKET_NOT_FOUND: &str = "bucket not found";

/// A resolved listing entry.
pub(crate) enum Listed {
    Object(ObjectInfo),
    Prefix(String),
}

impl Listed {
    pub(crate) fn name(&self) -> &str {
        match self {
            Listed::Object(info) => &info.key,
            Listed::Prefix(prefix) => prefix,
        }
    }
}

struct DriveCursor {
    disk: Arc<dyn Disk>,
    /// Whether this drive is being listed: all are, unless the lister
    /// started on a subset ([`SetLister::fewest_drives`]).
    active: bool,
    buf: VecDeque<ListEntry>,
    /// The last name received: the next page starts after it.
    after: Option<String>,
    exhausted: bool,
    failed: Option<String>,
    /// What the drive's last page said of [`cairn_disk::ListPage::complete`]; true
    /// until its first page.
    complete: bool,
}

/// Lists one set: a k-way merge of its drives' pages.
pub(crate) struct SetLister {
    bucket: String,
    options: ListOptions,
    page_size: usize,
    read_quorum: usize,
    disks: Vec<Arc<dyn Disk>>,
    /// The longest a page fetch waits for drives ([`ErasureSet::deadline`]).
    deadline: Duration,
    cursors: Vec<DriveCursor>,
    /// True while only some drives are listed; see [`SetLister::fewest_drives`].
    subset: bool,
    /// The last key or prefix decided, shown or not: where drives joining
    /// the merge start.
    decided: Option<String>,
    /// Scratch for [`SetLister::next`]: one entry per drive.
    found: Vec<Option<ListEntry>>,
    /// Each drive's [`Disk::list_generation`] of the bucket, read before
    /// the lister's first page: see [`SetLister::still_current`].
    generations: Vec<Option<u64>>,
}

/// Records `name` as the last decided, reusing the string's buffer.
fn set_decided(decided: &mut Option<String>, name: &str) {
    match decided {
        Some(decided) => {
            decided.clear();
            decided.push_str(name);
        }
        None => *decided = Some(name.to_owned()),
    }
}

/// What the drives that listed a key agree on, decided without `resolve`.
enum Agreed {
    /// A common prefix.
    Prefix,
    /// A delete marker: nothing to show.
    Hidden,
    /// The object whose entry is at this index of the drives' entries.
    Object(usize),
}

/// The listing entry the drives agreed on, moved out of their entries (a
/// page of 1000 keys would otherwise copy 2000 strings).
fn take_agreed(bucket: &str, agreed: Agreed, found: &mut [Option<ListEntry>]) -> Option<Listed> {
    match agreed {
        Agreed::Hidden => None,
        Agreed::Prefix => match found.iter_mut().find_map(Option::take) {
            Some(ListEntry::Prefix(prefix)) => Some(Listed::Prefix(prefix)),
            _ => unreachable!("agreed on a prefix"),
        },
        Agreed::Object(idx) => match found[idx].take() {
            Some(ListEntry::Object { key, record }) => {
                let version = record.versions.into_iter().next();
                Some(Listed::Object(into_object_info(
                    bucket,
                    key,
                    version.expect("agreed on its first version"),
                )))
            }
            _ => unreachable!("agreed on an object"),
        },
    }
}

/// Rotates which drives a subset listing starts on, to spread the reads.
static NEXT_SUBSET: AtomicUsize = AtomicUsize::new(0);

impl SetLister {
    pub(crate) fn new(set: &ErasureSet, bucket: &str, options: &ListOptions) -> SetLister {
        SetLister {
            bucket: bucket.to_owned(),
            options: options.clone(),
            // One more than the S3 page: the listing reads one entry past
            // the page to tell whether it is truncated, and with exactly
            // 1000 that one entry cost each drive a second page of 1000.
            page_size: (options.max_keys + 1).clamp(16, 1001),
            read_quorum: set.read_quorum(),
            disks: set.disks.clone(),
            deadline: set.deadline,
            cursors: set
                .disks
                .iter()
                .map(|disk| DriveCursor {
                    disk: disk.clone(),
                    active: true,
                    buf: VecDeque::new(),
                    after: options.start_after.clone(),
                    exhausted: false,
                    failed: None,
                    complete: true,
                })
                .collect(),
            subset: false,
            decided: None,
            found: Vec::new(),
            generations: set
                .disks
                .iter()
                .map(|disk| disk.list_generation(bucket))
                .collect(),
        }
    }

    /// Whether no drive of the set has committed a change to the bucket
    /// since this lister was made, so that everything it read, and reads
    /// from the same snapshots' successors, still answers a listing made
    /// now. False whenever a drive cannot tell (it is remote or offline).
    fn still_current(&self) -> bool {
        self.disks
            .iter()
            .zip(&self.generations)
            .all(|(disk, &then)| then.is_some() && disk.list_generation(&self.bucket) == then)
    }

    /// A lister that starts on the fewest drives that can answer for the
    /// set, and brings in the others only where those disagree.
    ///
    /// With `n` drives, data `d` and write quorum `w`, it lists
    /// `max(d, n - w + 1)` drives (2 of 4 at EC 2+2, 4 of 8 at EC 4+4):
    /// every acknowledged write or delete reached `w` drives, so at least
    /// one listed drive shows it; and a key whose listed drives all hold the
    /// same newest version is on at least `d` drives, so it is readable.
    /// Both hold only while drives keep what they acknowledged: a drive
    /// formatted into its slot empty has lost its share of every write, so
    /// a listed drive that does not say it is complete ([`cairn_disk::ListPage::complete`]:
    /// its set was created on it, or a refill without failures rebuilt it)
    /// is treated like a failing one.
    /// Any other case, and any listed drive failing, adds every drive
    /// to the merge from the last decided key on, which then resolves each
    /// key by quorum as [`SetLister::new`]'s does. What the subset cannot see
    /// is a write that never reached write quorum and sits only on unlisted
    /// drives; such a write was not acknowledged, and a full listing would
    /// show it only if it happened to reach read quorum.
    ///
    /// The argument also needs every acknowledged version to stay on write
    /// quorum, which clusters under restarts do not yet always keep
    /// (ARCHITECTURE.md); so `ObjectLayer::list_objects` uses this only
    /// when every drive is this process's.
    pub(crate) fn fewest_drives(
        set: &ErasureSet,
        bucket: &str,
        options: &ListOptions,
    ) -> SetLister {
        let mut lister = SetLister::new(set, bucket, options);
        let n = set.size();
        let listed = set.read_quorum().max(n + 1 - set.write_quorum().min(n));
        if listed >= n {
            return lister;
        }
        // Online drives, this machine's first, from a rotating start.
        let start = NEXT_SUBSET.fetch_add(1, Ordering::Relaxed);
        let mut candidates: Vec<usize> = (0..n)
            .map(|i| (start + i) % n)
            .filter(|&idx| set.disks[idx].is_online())
            .collect();
        candidates.sort_by_key(|&idx| !set.disks[idx].reads_block());
        if candidates.len() < listed {
            return lister;
        }
        for cursor in &mut lister.cursors {
            cursor.active = false;
        }
        for &idx in &candidates[..listed] {
            lister.cursors[idx].active = true;
        }
        lister.subset = true;
        lister
    }

    /// Adds every drive to the merge, starting after the last decided key.
    fn list_all_drives(&mut self) {
        let after = self
            .decided
            .clone()
            .or_else(|| self.options.start_after.clone());
        for cursor in &mut self.cursors {
            if !cursor.active {
                cursor.active = true;
                cursor.after = after.clone();
            }
        }
        self.subset = false;
    }

    /// Fetches the next page of every drive whose buffer ran dry.
    async fn refill(&mut self) -> Result<()> {
        self.fetch().await;
        if self.subset
            && self
                .cursors
                .iter()
                .any(|c| c.active && (c.failed.is_some() || !c.complete))
        {
            self.list_all_drives();
            self.fetch().await;
        }
        self.check_quorum()
    }

    async fn fetch(&mut self) {
        let wanted: Vec<usize> = (0..self.cursors.len())
            .filter(|&idx| {
                let cursor = &self.cursors[idx];
                cursor.active
                    && cursor.buf.is_empty()
                    && !cursor.exhausted
                    && cursor.failed.is_none()
            })
            .collect();
        let fetches = wanted.iter().map(|&idx| {
            let cursor = &self.cursors[idx];
            let query = ListQuery {
                bucket: self.bucket.clone(),
                prefix: self.options.prefix.clone(),
                start_after: cursor.after.clone(),
                delimiter: self.options.delimiter.clone(),
                limit: self.page_size,
            };
            let disk = cursor.disk.clone();
            async move { disk.list_objects(&query).await }
        });
        let pages = quorum::call_many(fetches, Strategy::all().with_deadline(self.deadline))
            .await
            .into_results(|_| not_waited_for());
        for (idx, page) in wanted.into_iter().zip(pages) {
            let cursor = &mut self.cursors[idx];
            match page {
                Ok(page) => {
                    if let Some(last) = page.entries.last() {
                        cursor.after = Some(last.name().to_owned());
                    }
                    cursor.exhausted = !page.truncated;
                    cursor.complete = page.complete;
                    cursor.buf.extend(page.entries);
                }
                Err(DiskError::BucketNotFound) => {
                    cursor.failed = Some(BUCKET_NOT_FOUND.to_owned());
                }
                Err(err) => cursor.failed = Some(format!("{}: {err}", cursor.disk.endpoint())),
            }
        }
    }

    fn check_quorum(&self) -> Result<()> {
        let bucket_missing = self
            .cursors
            .iter()
            .filter(|c| c.failed.as_deref() == Some(BUCKET_NOT_FOUND))
            .count();
        if bucket_missing >= self.read_quorum {
            return Err(Error::BucketNotFound);
        }
        let answering = self
            .cursors
            .iter()
            .filter(|c| c.active && c.failed.is_none())
            .count();
        if answering < self.read_quorum {
            return Err(Error::ReadQuorum {
                ok: answering,
                needed: self.read_quorum,
                errors: self
                    .cursors
                    .iter()
                    .filter_map(|c| c.failed.clone())
                    .collect(),
            });
        }
        Ok(())
    }

    /// The next visible entry of this set, in key order.
    pub(crate) async fn next(&mut self) -> Result<Option<Listed>> {
        loop {
            self.refill().await?;
            let Some(min_idx) = self
                .cursors
                .iter()
                .enumerate()
                .filter_map(|(idx, c)| c.buf.front().map(|e| (e.name(), idx)))
                .min()
                .map(|(_, idx)| idx)
            else {
                return Ok(None);
            };
            // The entries of the smallest name, by drive, gathered into a
            // vector reused from key to key; the name is read from the
            // entries, not copied per key.
            let mut found = std::mem::take(&mut self.found);
            found.clear();
            let first = self.cursors[min_idx].buf.pop_front().expect("listed entry");
            for (idx, cursor) in self.cursors.iter_mut().enumerate() {
                if idx != min_idx && cursor.buf.front().is_some_and(|e| e.name() == first.name()) {
                    found.push(cursor.buf.pop_front());
                } else {
                    found.push(None);
                }
            }
            found[min_idx] = Some(first);
            let min = found[min_idx].as_ref().expect("just set").name();
            let decision = if self.subset {
                match self.subset_decides(&found) {
                    Some(agreed) => {
                        set_decided(&mut self.decided, min);
                        take_agreed(&self.bucket, agreed, &mut found)
                    }
                    None => {
                        // The listed drives disagree: put the entries back
                        // and merge every drive from the last decided key.
                        for (cursor, entry) in self.cursors.iter_mut().zip(found.drain(..)) {
                            if let Some(entry) = entry {
                                cursor.buf.push_front(entry);
                            }
                        }
                        self.found = found;
                        self.list_all_drives();
                        continue;
                    }
                }
            } else {
                set_decided(&mut self.decided, min);
                let decided = self.decided.as_deref().expect("just set");
                self.resolve_entry(decided, &mut found)?
            };
            self.found = found;
            if let Some(listed) = decision {
                return Ok(Some(listed));
            }
        }
    }

    /// While only a subset is listed: what every listed drive agrees on,
    /// if each has the entry and they agree.
    fn subset_decides(&self, found: &[Option<ListEntry>]) -> Option<Agreed> {
        let listed = self.cursors.iter().filter(|c| c.active).count();
        if found.iter().flatten().count() < listed {
            return None;
        }
        if found
            .iter()
            .flatten()
            .all(|e| matches!(e, ListEntry::Prefix(_)))
        {
            return Some(Agreed::Prefix);
        }
        self.agreed(found)
    }

    /// The common case, decided without [`resolve`]'s bookkeeping: every
    /// drive that listed the key has the same first version, no version on
    /// any of them is newer, and enough drives hold it to read it: then it
    /// is what `resolve` would pick.
    fn agreed(&self, found: &[Option<ListEntry>]) -> Option<Agreed> {
        let mut newest = None;
        let mut count = 0;
        let mut holder = 0;
        for (idx, entry) in found.iter().enumerate() {
            let Some(entry) = entry else { continue };
            let ListEntry::Object { record, .. } = entry else {
                return None;
            };
            let first = record.versions.first()?;
            let identity = first.identity();
            if record.versions.iter().any(|v| v.identity() > identity) {
                return None;
            }
            match newest {
                None => {
                    newest = Some(first);
                    holder = idx;
                }
                Some(seen) if seen.identity() == first.identity() => {}
                Some(_) => return None,
            }
            count += 1;
        }
        let version = newest?;
        if count < usize::from(version.erasure.data_shards).max(1) {
            return None;
        }
        Some(if version.delete_marker {
            Agreed::Hidden
        } else {
            Agreed::Object(holder)
        })
    }

    /// Decides whether an entry that some drives listed is visible.
    fn resolve_entry(
        &self,
        name: &str,
        found: &mut Vec<Option<ListEntry>>,
    ) -> Result<Option<Listed>> {
        let is_prefix = found
            .iter()
            .flatten()
            .any(|e| matches!(e, ListEntry::Prefix(_)));
        if is_prefix {
            let count = found.iter().flatten().count();
            return Ok((count >= self.read_quorum).then(|| Listed::Prefix(name.to_owned())));
        }
        if let Some(agreed) = self.agreed(found) {
            return Ok(take_agreed(&self.bucket, agreed, found));
        }
        let reads: Vec<Option<Result<ReadObject, DiskError>>> = found
            .drain(..)
            .zip(&self.cursors)
            .map(|(entry, cursor)| match entry {
                Some(ListEntry::Object { record, .. }) => Some(Ok(ReadObject {
                    record,
                    inline: None,
                })),
                _ if cursor.failed.is_some() => Some(Err(DiskError::Offline(String::new()))),
                _ => Some(Err(DiskError::NotFound)),
            })
            .collect();
        // An entry without a readable version is left out when it is a
        // write that never reached quorum. When one could be hiding on the
        // drives that failed (`resolve` says so with a read-quorum error),
        // the listing fails like a GET of the key would: leaving out an
        // acknowledged key would tell a sync tool it was deleted.
        match resolve(&self.disks, self.read_quorum, ReadData::None, reads)? {
            Some(resolved) if !resolved.version.delete_marker => Ok(Some(Listed::Object(
                object_info(&self.bucket, name, &resolved.version),
            ))),
            _ => Ok(None),
        }
    }
}

/// Merges the listers of several sets into one ordered listing.
pub(crate) struct MergedLister {
    listers: Vec<SetLister>,
    heads: Vec<Option<Listed>>,
    primed: bool,
}

impl MergedLister {
    /// Fetches the next drive pages the listing will need, as its next
    /// call to [`MergedLister::next`] would.
    async fn read_ahead(&mut self) -> Result<()> {
        for result in join_all(self.listers.iter_mut().map(SetLister::refill)).await {
            result?;
        }
        Ok(())
    }

    fn still_current(&self) -> bool {
        self.listers.iter().all(SetLister::still_current)
    }

    pub(crate) fn new(listers: Vec<SetLister>) -> MergedLister {
        let heads = listers.iter().map(|_| None).collect();
        MergedLister {
            listers,
            heads,
            primed: false,
        }
    }

    pub(crate) async fn next(&mut self) -> Result<Option<Listed>> {
        if let [only] = self.listers.as_mut_slice() {
            return only.next().await;
        }
        if !self.primed {
            let firsts = join_all(self.listers.iter_mut().map(|l| l.next())).await;
            for (head, first) in self.heads.iter_mut().zip(firsts) {
                *head = first?;
            }
            self.primed = true;
        }
        let Some(min) = self
            .heads
            .iter()
            .flatten()
            .map(|l| l.name().to_owned())
            .min()
        else {
            return Ok(None);
        };
        let mut chosen: Option<Listed> = None;
        for idx in 0..self.heads.len() {
            if self.heads[idx].as_ref().is_some_and(|l| l.name() == min) {
                let entry = self.heads[idx].take().expect("checked above");
                self.heads[idx] = self.listers[idx].next().await?;
                chosen = match (chosen, entry) {
                    // The same key in two pools: the newest wins.
                    (Some(Listed::Object(a)), Listed::Object(b)) => {
                        Some(Listed::Object(if b.mod_time_ns > a.mod_time_ns {
                            b
                        } else {
                            a
                        }))
                    }
                    (Some(Listed::Object(a)), Listed::Prefix(_)) => Some(Listed::Object(a)),
                    (_, entry) => Some(entry),
                };
            }
        }
        Ok(chosen)
    }
}

/// Most listings kept for their next page at once.
const READ_AHEAD_LISTINGS: usize = 8;

/// How long a kept listing waits for its next page.
const READ_AHEAD_WAIT: Duration = Duration::from_secs(30);

/// Listings kept after a truncated page, with their drives' next pages read
/// in the background, for the request that asks for the page after it.
///
/// Every S3 client lists a prefix page by page, each request starting after
/// the last key of the one before; a page's time is about one drive scan
/// followed by the merge and the response, and this moves the scan off the
/// next request's path, into the time the client spends on the page it
/// has. A kept listing is used only while [`SetLister::still_current`]:
/// any commit touching the bucket on any of the set's drives since the
/// listing started, which includes every write acknowledged before the
/// next request arrived, makes the request list afresh; so a page never
/// misses a write acknowledged before it was asked for. At most
/// [`READ_AHEAD_LISTINGS`] listings are kept (each holds a drive page per
/// listed drive), each for at most [`READ_AHEAD_WAIT`].
#[derive(Default)]
pub(crate) struct ReadAhead {
    kept: Mutex<Vec<Kept>>,
    stats: ReadAheadCounters,
}

#[derive(Default)]
struct ReadAheadCounters {
    kept: AtomicU64,
    resumed: AtomicU64,
    stale: AtomicU64,
}

/// How the listing read-ahead has fared since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadAheadStats {
    /// Truncated pages whose listing was kept for the next page.
    pub kept: u64,
    /// Pages answered by continuing a kept listing.
    pub resumed: u64,
    /// Kept listings found for a page but not used, as the bucket had
    /// changed since they started (or their read-ahead failed).
    pub stale: u64,
}

struct Kept {
    /// The request this listing answers next.
    bucket: String,
    prefix: String,
    delimiter: Option<String>,
    start_after: String,
    since: Instant,
    /// The read-ahead; it yields the listing and its next entry.
    listing: tokio::task::JoinHandle<Option<(MergedLister, Listed)>>,
}

impl Kept {
    fn continues(&self, bucket: &str, options: &ListOptions) -> bool {
        self.bucket == bucket
            && self.prefix == options.prefix
            && self.delimiter == options.delimiter
            && options.start_after.as_deref() == Some(self.start_after.as_str())
    }
}

impl ReadAhead {
    fn kept(&self) -> std::sync::MutexGuard<'_, Vec<Kept>> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `lister`, whose page for `options` ended before `next`, and
    /// starts reading the drive pages that its next page needs.
    pub(crate) fn keep(
        &self,
        bucket: &str,
        options: &ListOptions,
        last: &str,
        mut lister: MergedLister,
        next: Listed,
    ) {
        let listing = tokio::spawn(async move {
            lister.read_ahead().await.ok()?;
            Some((lister, next))
        });
        let kept = Kept {
            bucket: bucket.to_owned(),
            prefix: options.prefix.clone(),
            delimiter: options.delimiter.clone(),
            start_after: last.to_owned(),
            since: Instant::now(),
            listing,
        };
        let mut all = self.kept();
        all.retain(|k| {
            let keep = k.since.elapsed() < READ_AHEAD_WAIT;
            if !keep {
                k.listing.abort();
            }
            keep
        });
        if all.len() >= READ_AHEAD_LISTINGS {
            all.remove(0).listing.abort();
        }
        all.push(kept);
        self.stats.kept.fetch_add(1, Ordering::Relaxed);
    }

    /// The kept listing that continues where `options` starts, with its
    /// next entry, if there is one and the bucket has not changed since.
    pub(crate) async fn resume(
        &self,
        bucket: &str,
        options: &ListOptions,
    ) -> Option<(MergedLister, Listed)> {
        options.start_after.as_ref()?;
        let kept = {
            let mut all = self.kept();
            let idx = all.iter().position(|k| k.continues(bucket, options))?;
            all.remove(idx)
        };
        if kept.since.elapsed() >= READ_AHEAD_WAIT {
            kept.listing.abort();
            return None;
        }
        match kept.listing.await {
            Ok(Some((lister, next))) if lister.still_current() => {
                self.stats.resumed.fetch_add(1, Ordering::Relaxed);
                Some((lister, next))
            }
            _ => {
                self.stats.stale.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    pub(crate) fn stats(&self) -> ReadAheadStats {
        ReadAheadStats {
            kept: self.stats.kept.load(Ordering::Relaxed),
            resumed: self.stats.resumed.load(Ordering::Relaxed),
            stale: self.stats.stale.load(Ordering::Relaxed),
        }
    }
}
