//! Listing: merge the ordered scans of every drive of a set, resolving each
//! key by quorum, then merge the sets (DESIGN.md section 4).

use std::collections::VecDeque;
use std::sync::Arc;

use cairn_disk::{Disk, DiskError, ListEntry, ListQuery, ReadData, ReadObject};
use futures::future::join_all;

use crate::error::{Error, Result};
use crate::put::object_info;
use crate::set::{ErasureSet, resolve};
use crate::types::{ListOptions, ObjectInfo};

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
    buf: VecDeque<ListEntry>,
    /// The last name received: the next page starts after it.
    after: Option<String>,
    exhausted: bool,
    failed: Option<String>,
}

/// Lists one set: a k-way merge of its drives' pages.
pub(crate) struct SetLister {
    bucket: String,
    options: ListOptions,
    page_size: usize,
    read_quorum: usize,
    disks: Vec<Arc<dyn Disk>>,
    cursors: Vec<DriveCursor>,
}

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
            cursors: set
                .disks
                .iter()
                .map(|disk| DriveCursor {
                    disk: disk.clone(),
                    buf: VecDeque::new(),
                    after: options.start_after.clone(),
                    exhausted: false,
                    failed: None,
                })
                .collect(),
        }
    }

    /// Fetches the next page of every drive whose buffer ran dry.
    async fn refill(&mut self) -> Result<()> {
        let fetches = self.cursors.iter().enumerate().filter_map(|(idx, cursor)| {
            if !cursor.buf.is_empty() || cursor.exhausted || cursor.failed.is_some() {
                return None;
            }
            let query = ListQuery {
                bucket: self.bucket.clone(),
                prefix: self.options.prefix.clone(),
                start_after: cursor.after.clone(),
                delimiter: self.options.delimiter.clone(),
                limit: self.page_size,
            };
            let disk = cursor.disk.clone();
            Some(async move { (idx, disk.list_objects(&query).await) })
        });
        let mut bucket_missing = 0;
        for (idx, page) in join_all(fetches).await {
            let cursor = &mut self.cursors[idx];
            match page {
                Ok(page) => {
                    if let Some(last) = page.entries.last() {
                        cursor.after = Some(last.name().to_owned());
                    }
                    cursor.exhausted = !page.truncated;
                    cursor.buf.extend(page.entries);
                }
                Err(DiskError::BucketNotFound) => {
                    bucket_missing += 1;
                    cursor.failed = Some("bucket not found".to_owned());
                }
                Err(err) => cursor.failed = Some(format!("{}: {err}", cursor.disk.endpoint())),
            }
        }
        if bucket_missing >= self.read_quorum {
            return Err(Error::BucketNotFound);
        }
        let answering = self.cursors.iter().filter(|c| c.failed.is_none()).count();
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
            let first = self.cursors[min_idx].buf.pop_front().expect("listed entry");
            let min = first.name().to_owned();
            let mut found: Vec<Option<ListEntry>> = Vec::with_capacity(self.cursors.len());
            let mut first = Some(first);
            for (idx, cursor) in self.cursors.iter_mut().enumerate() {
                if idx == min_idx {
                    found.push(first.take());
                } else if cursor.buf.front().is_some_and(|e| e.name() == min) {
                    found.push(cursor.buf.pop_front());
                } else {
                    found.push(None);
                }
            }
            if let Some(listed) = self.resolve_entry(&min, found) {
                return Ok(Some(listed));
            }
        }
    }

    /// The common case, decided without [`resolve`]'s bookkeeping: every
    /// drive that listed the key has the same first version, no version on
    /// any of them is newer, and enough drives hold it to read it: then it
    /// is what `resolve` would pick.
    fn agreed(&self, name: &str, found: &[Option<ListEntry>]) -> Option<Option<Listed>> {
        let mut newest = None;
        let mut count = 0;
        for entry in found.iter().flatten() {
            let ListEntry::Object { record, .. } = entry else {
                return None;
            };
            let first = record.versions.first()?;
            let identity = first.identity();
            if record.versions.iter().any(|v| v.identity() > identity) {
                return None;
            }
            match newest {
                None => newest = Some(first),
                Some(seen) if seen.identity() == first.identity() => {}
                Some(_) => return None,
            }
            count += 1;
        }
        let version = newest?;
        if count < usize::from(version.erasure.data_shards).max(1) {
            return None;
        }
        Some(
            (!version.delete_marker)
                .then(|| Listed::Object(object_info(&self.bucket, name, version))),
        )
    }

    /// Decides whether an entry that some drives listed is visible.
    fn resolve_entry(&self, name: &str, found: Vec<Option<ListEntry>>) -> Option<Listed> {
        let is_prefix = found
            .iter()
            .flatten()
            .any(|e| matches!(e, ListEntry::Prefix(_)));
        if is_prefix {
            let count = found.iter().flatten().count();
            return (count >= self.read_quorum).then(|| Listed::Prefix(name.to_owned()));
        }
        if let Some(listed) = self.agreed(name, &found) {
            return listed;
        }
        let reads: Vec<Result<ReadObject, DiskError>> = found
            .into_iter()
            .zip(&self.cursors)
            .map(|(entry, cursor)| match entry {
                Some(ListEntry::Object { record, .. }) => Ok(ReadObject {
                    record,
                    inline: None,
                }),
                _ if cursor.failed.is_some() => Err(DiskError::Offline(String::new())),
                _ => Err(DiskError::NotFound),
            })
            .collect();
        // An entry without a readable version is left out: it is a write
        // that never reached quorum, or unreadable until drives return.
        match resolve(&self.disks, self.read_quorum, ReadData::None, reads) {
            Ok(Some(resolved)) if !resolved.version.delete_marker => Some(Listed::Object(
                object_info(&self.bucket, name, &resolved.version),
            )),
            _ => None,
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
    pub(crate) fn new(listers: Vec<SetLister>) -> MergedLister {
        let heads = listers.iter().map(|_| None).collect();
        MergedLister {
            listers,
            heads,
            primed: false,
        }
    }

    pub(crate) async fn next(&mut self) -> Result<Option<Listed>> {
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
