//! The two engines behind one small trait.
//!
//! Durability settings used (the point of the whole exercise):
//! * redb: every `put_batch` commit uses `Durability::Immediate` (fsync before
//!   `commit()` returns). `redb-qr` additionally enables `set_quick_repair(true)`.
//! * fjall: every `put_batch` transaction uses
//!   `.durability(Some(PersistMode::SyncAll))`, i.e. the journal is flushed and
//!   fsynced inside `commit()`. NOTE: fjall's default for a write transaction
//!   is `PersistMode::Buffer` (write(2) to the OS only, no fsync), which
//!   survives kill -9 but NOT power loss.

use crate::workload::{make_value, value_version};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Block/page cache given to each engine (same budget for both).
pub const CACHE_BYTES: usize = 256 * 1024 * 1024;

pub trait Engine: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Non-durable bulk load in batches of `batch` keys, then one durable
    /// commit / fsync at the end. Every value is `make_value(key, 1)`.
    fn bulk_load(&self, keys: &mut dyn Iterator<Item = Vec<u8>>, batch: usize) -> Res<u64>;
    /// ONE write transaction: read-modify-write each key in order (new version
    /// = old version + 1, or 1 if absent), then ONE durable commit.
    /// Pushes the version written for each key to `versions`.
    fn put_batch(&self, keys: &[Vec<u8>], versions: &mut Vec<u64>) -> Res<()>;
    fn get(&self, key: &[u8]) -> Res<Option<Vec<u8>>>;
    /// Ordered scan of at most `limit` entries with key >= `start`, in a
    /// fresh read snapshot. Calls `f` for each entry; returns entries seen.
    fn scan(&self, start: &[u8], limit: usize, f: &mut dyn FnMut(&[u8], &[u8])) -> Res<u64>;
    /// Human-readable note about what the last open did (e.g. "repair ran").
    fn open_note(&self) -> String;
}

pub fn open_engine(name: &str, dir: &Path) -> Res<Box<dyn Engine>> {
    Ok(match name {
        "redb" => Box::new(Redb::open(dir, false)?),
        "redb-qr" => Box::new(Redb::open(dir, true)?),
        "fjall" => Box::new(Fjall::open(dir, true)?),
        // Only used by the fsync audit: fjall's default transaction durability.
        "fjall-default" => Box::new(Fjall::open(dir, false)?),
        other => return Err(format!("unknown engine {other}").into()),
    })
}

// Box<dyn Engine> is itself usable as an engine by the generic code.
impl Engine for Box<dyn Engine> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn bulk_load(&self, keys: &mut dyn Iterator<Item = Vec<u8>>, batch: usize) -> Res<u64> {
        (**self).bulk_load(keys, batch)
    }
    fn put_batch(&self, keys: &[Vec<u8>], versions: &mut Vec<u64>) -> Res<()> {
        (**self).put_batch(keys, versions)
    }
    fn get(&self, key: &[u8]) -> Res<Option<Vec<u8>>> {
        (**self).get(key)
    }
    fn scan(&self, start: &[u8], limit: usize, f: &mut dyn FnMut(&[u8], &[u8])) -> Res<u64> {
        (**self).scan(start, limit, f)
    }
    fn open_note(&self) -> String {
        (**self).open_note()
    }
}

// ---------------------------------------------------------------- redb

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

const OBJECTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("objects");

pub struct Redb {
    db: redb::Database,
    quick_repair: bool,
    repaired: Arc<AtomicBool>,
}

impl Redb {
    pub fn open(dir: &Path, quick_repair: bool) -> Res<Self> {
        std::fs::create_dir_all(dir)?;
        let repaired = Arc::new(AtomicBool::new(false));
        let flag = repaired.clone();
        let mut b = redb::Builder::new();
        b.set_cache_size(CACHE_BYTES);
        b.set_repair_callback(move |_s| flag.store(true, Ordering::SeqCst));
        let db = b.create(dir.join("objects.redb"))?;
        let me = Redb { db, quick_repair, repaired };
        // Make sure the table exists (durable, cheap).
        let mut tx = me.db.begin_write()?;
        tx.set_quick_repair(quick_repair);
        tx.open_table(OBJECTS)?;
        tx.commit()?;
        Ok(me)
    }
}

impl Engine for Redb {
    fn name(&self) -> &'static str {
        if self.quick_repair {
            "redb-qr"
        } else {
            "redb"
        }
    }

    fn bulk_load(&self, keys: &mut dyn Iterator<Item = Vec<u8>>, batch: usize) -> Res<u64> {
        let mut n = 0u64;
        loop {
            let mut tx = self.db.begin_write()?;
            tx.set_durability(redb::Durability::None)?;
            tx.set_quick_repair(self.quick_repair);
            let mut in_batch = 0;
            {
                let mut t = tx.open_table(OBJECTS)?;
                while let Some(k) = keys.next() {
                    let v = make_value(&k, 1);
                    t.insert(k.as_slice(), v.as_slice())?;
                    in_batch += 1;
                    if in_batch == batch {
                        break;
                    }
                }
            }
            tx.commit()?;
            n += in_batch as u64;
            if in_batch < batch {
                break;
            }
        }
        // A Durability::Immediate commit makes all preceding None commits durable.
        let mut tx = self.db.begin_write()?;
        tx.set_durability(redb::Durability::Immediate)?;
        tx.set_quick_repair(self.quick_repair);
        tx.commit()?;
        Ok(n)
    }

    fn put_batch(&self, keys: &[Vec<u8>], versions: &mut Vec<u64>) -> Res<()> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(redb::Durability::Immediate)?;
        tx.set_quick_repair(self.quick_repair);
        {
            let mut t = tx.open_table(OBJECTS)?;
            for k in keys {
                let old = t.get(k.as_slice())?.map(|g| value_version(g.value()));
                let ver = old.map_or(1, |v| v + 1);
                let val = make_value(k, ver);
                t.insert(k.as_slice(), val.as_slice())?;
                versions.push(ver);
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Res<Option<Vec<u8>>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(OBJECTS)?;
        Ok(t.get(key)?.map(|g| g.value().to_vec()))
    }

    fn scan(&self, start: &[u8], limit: usize, f: &mut dyn FnMut(&[u8], &[u8])) -> Res<u64> {
        let r = self.db.begin_read()?;
        let t = r.open_table(OBJECTS)?;
        let mut n = 0u64;
        for item in t.range::<&[u8]>(start..)?.take(limit) {
            let (k, v) = item?;
            f(k.value(), v.value());
            n += 1;
        }
        Ok(n)
    }

    fn open_note(&self) -> String {
        if self.repaired.load(Ordering::SeqCst) {
            "repair ran during open".into()
        } else {
            "no repair".into()
        }
    }
}

// ---------------------------------------------------------------- fjall

use fjall::{KeyspaceCreateOptions, PersistMode, Readable, SingleWriterTxDatabase, SingleWriterTxKeyspace};

pub struct Fjall {
    db: SingleWriterTxDatabase,
    ks: SingleWriterTxKeyspace,
    /// true: SyncAll per commit (what Cairn needs). false: fjall's default
    /// write_tx() durability (PersistMode::Buffer, no fsync) - audit only.
    sync: bool,
}

impl Fjall {
    pub fn open(dir: &Path, sync: bool) -> Res<Self> {
        std::fs::create_dir_all(dir)?;
        let db = SingleWriterTxDatabase::builder(dir.join("fjall"))
            .cache_size(CACHE_BYTES as u64)
            .open()?;
        let ks = db.keyspace("objects", KeyspaceCreateOptions::default)?;
        Ok(Fjall { db, ks, sync })
    }
}

impl Engine for Fjall {
    fn name(&self) -> &'static str {
        if self.sync {
            "fjall"
        } else {
            "fjall-default"
        }
    }

    fn bulk_load(&self, keys: &mut dyn Iterator<Item = Vec<u8>>, batch: usize) -> Res<u64> {
        let mut n = 0u64;
        loop {
            // Buffer = write(2) to the OS, no fsync (non-durable bulk load).
            let mut tx = self.db.write_tx().durability(Some(PersistMode::Buffer));
            let mut in_batch = 0;
            while let Some(k) = keys.next() {
                let v = make_value(&k, 1);
                tx.insert(&self.ks, k, v);
                in_batch += 1;
                if in_batch == batch {
                    break;
                }
            }
            tx.commit()?;
            n += in_batch as u64;
            if in_batch < batch {
                break;
            }
        }
        self.db.persist(PersistMode::SyncAll)?;
        Ok(n)
    }

    fn put_batch(&self, keys: &[Vec<u8>], versions: &mut Vec<u64>) -> Res<()> {
        // SyncAll: journal is flushed + fsync()ed inside commit().
        let mut tx = if self.sync {
            self.db.write_tx().durability(Some(PersistMode::SyncAll))
        } else {
            self.db.write_tx() // default durability: Buffer (no fsync)
        };
        for k in keys {
            // Transaction reads see the transaction's own earlier writes.
            let old = tx.get(&self.ks, k)?.map(|v| value_version(&v));
            let ver = old.map_or(1, |v| v + 1);
            let val = make_value(k, ver);
            tx.insert(&self.ks, k.as_slice(), val);
            versions.push(ver);
        }
        tx.commit()?;
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Res<Option<Vec<u8>>> {
        Ok(self.ks.get(key)?.map(|v| v.to_vec()))
    }

    fn scan(&self, start: &[u8], limit: usize, f: &mut dyn FnMut(&[u8], &[u8])) -> Res<u64> {
        let snap = self.db.read_tx();
        let mut n = 0u64;
        for g in snap.range(&self.ks, start..).take(limit) {
            let (k, v) = g.into_inner()?;
            f(&k, &v);
            n += 1;
        }
        Ok(n)
    }

    fn open_note(&self) -> String {
        format!("journals={}", self.db.journal_count())
    }
}
