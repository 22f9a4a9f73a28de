//! Shard files written around the page cache (`O_DIRECT`).
//!
//! A shard file is written once, made durable before its write is
//! acknowledged, and seldom read soon after. Through the page cache every
//! byte is copied by the kernel into a page it first has to find (on the
//! virtual machines Cairn often runs on, fault in from the host), and the
//! dirty pages are then written back by the `fsync`; the cached copy mostly
//! evicts something more useful, such as the metadata store's blocks. With
//! `O_DIRECT` the drive takes the bytes straight from a staging buffer.
//!
//! `O_DIRECT` wants the buffer's address, the file offset and the length
//! all aligned to the drive's block size, and frames of a shard file are
//! not (a frame is a hash and `block / data` bytes). So a writer stages
//! frames in an aligned buffer and writes it out whole, except a large
//! frame that the encoder placed in memory as it goes in the file, whose
//! whole pages are written from where they lie ([`Stage::write`]); what is
//! left at the end is written with the page cache, after `O_DIRECT` is
//! turned off for the tail. A file that neither fills one buffer nor holds
//! such a frame is written with the page cache in one call, and a file
//! system that refuses `O_DIRECT` (tmpfs before Linux 6.6) is written with
//! the page cache throughout.
//!
//! Buffers come from a small pool, so that their pages are touched once,
//! and at most [`MAX_BUFFERS`] exist: writers beyond that write through the
//! page cache as before, which keeps memory bounded however many PUTs run.

use std::fs::File;
use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rustix::fs::OFlags;

/// The alignment `O_DIRECT` needs: a multiple of every logical block size
/// in use (512 or 4096 bytes).
const ALIGN: usize = 4096;

/// One staging buffer: the size of each direct write of staged bytes alone
/// (a write with a placed frame's pages is larger).
pub(crate) const STAGE: usize = 512 << 10;

/// The least data [`Stage::write`] writes from where it lies: below it,
/// one more write costs more than the copy it saves.
const PLACED_MIN: usize = 64 << 10;

/// Staging buffers that may exist at once, server-wide (16 MiB).
pub(crate) const MAX_BUFFERS: usize = 32;

static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
static IN_USE: AtomicUsize = AtomicUsize::new(0);

/// An aligned staging buffer for one shard file, returned to the pool on drop.
pub(crate) struct Stage {
    buf: Vec<u8>,
    /// Where the aligned window of [`STAGE`] bytes starts in `buf`.
    start: usize,
    /// Bytes staged in the window.
    len: usize,
    /// Bytes written to the file so far: where the next write goes.
    offset: u64,
    /// `O_DIRECT` is on for the file.
    direct: bool,
    /// Bytes this stage wrote with `O_DIRECT`.
    direct_bytes: u64,
    /// Bytes copied into the window.
    copied: u64,
}

impl Stage {
    /// A staging buffer, or `None` when [`MAX_BUFFERS`] are in use.
    pub(crate) fn take() -> Option<Stage> {
        IN_USE
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_BUFFERS).then_some(n + 1)
            })
            .ok()?;
        let pooled = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let buf = pooled.unwrap_or_else(|| vec![0; STAGE + ALIGN]);
        let addr = buf.as_ptr() as usize;
        let start = addr.next_multiple_of(ALIGN) - addr;
        Some(Stage {
            buf,
            start,
            len: 0,
            offset: 0,
            direct: false,
            direct_bytes: 0,
            copied: 0,
        })
    }

    /// Appends `data`, writing out every full buffer to `file` (which must
    /// be new and written only through this stage). `direct_ok` is the
    /// drive's: cleared when its file system refuses `O_DIRECT`.
    ///
    /// Data placed in memory as it goes in the file (its address congruent
    /// to its file offset modulo a page, as `Erasure::encode_placed` places
    /// frames) is not copied but for its partial pages: what is staged, and
    /// the data's head up to its first page boundary, go out in one
    /// `pwritev` with the data's whole pages, and only its tail is staged.
    pub(crate) fn write(
        &mut self,
        file: &File,
        mut data: &[u8],
        direct_ok: &AtomicBool,
    ) -> io::Result<()> {
        if self.placed(data) && self.turn_direct_on(file, direct_ok) {
            let head = self.head();
            let at = self.start + self.len;
            self.buf[at..at + head].copy_from_slice(&data[..head]);
            self.len += head;
            self.copied += head as u64;
            let pages = (data.len() - head) / ALIGN * ALIGN;
            debug_assert!(
                self.offset.is_multiple_of(ALIGN as u64) && self.len.is_multiple_of(ALIGN),
                "a direct write starts and ends on page boundaries"
            );
            self.write_out(file, 0..self.len, &data[head..head + pages], direct_ok)?;
            self.len = 0;
            data = &data[head + pages..];
        }
        while !data.is_empty() {
            let take = (STAGE - self.len).min(data.len());
            let at = self.start + self.len;
            self.buf[at..at + take].copy_from_slice(&data[..take]);
            self.len += take;
            self.copied += take as u64;
            data = &data[take..];
            if self.len == STAGE {
                self.turn_direct_on(file, direct_ok);
                self.write_out(file, 0..STAGE, &[], direct_ok)?;
                self.len = 0;
            }
        }
        Ok(())
    }

    /// Bytes that complete the page being staged.
    fn head(&self) -> usize {
        (ALIGN - self.len % ALIGN) % ALIGN
    }

    /// Whether `data` is worth writing from where it lies: it lies as it
    /// goes in the file, and holds whole pages past what completes the
    /// staged page (which always fits: the window is whole pages, and a
    /// full one is written out at once).
    fn placed(&self, data: &[u8]) -> bool {
        // The window and every write so far are page-aligned, so the staged
        // bytes end where `data` goes, modulo a page.
        let head = self.head();
        data.len() >= head + PLACED_MIN && (data.as_ptr() as usize + head).is_multiple_of(ALIGN)
    }

    /// Turns `O_DIRECT` on for `file` unless it is on or the drive refused
    /// it; whether it is on.
    fn turn_direct_on(&mut self, file: &File, direct_ok: &AtomicBool) -> bool {
        if !self.direct && direct_ok.load(Ordering::Relaxed) {
            match set_direct(file, true) {
                Ok(()) => self.direct = true,
                // The file system does no direct I/O (tmpfs before 6.6 says
                // EINVAL): the drive's files go through the cache.
                Err(_) => direct_ok.store(false, Ordering::Relaxed),
            }
        }
        self.direct
    }

    /// Writes out what is staged: the aligned part with `O_DIRECT` if it is
    /// on, then the rest through the page cache.
    pub(crate) fn flush(&mut self, file: &File, direct_ok: &AtomicBool) -> io::Result<()> {
        let mut head = 0;
        if self.direct {
            head = self.len / ALIGN * ALIGN;
            self.write_out(file, 0..head, &[], direct_ok)?;
        }
        if self.direct {
            set_direct(file, false)?;
            self.direct = false;
        }
        self.write_out(file, head..self.len, &[], direct_ok)?;
        self.len = 0;
        Ok(())
    }

    /// Writes `range` of the window and then `pages` (a placed frame's
    /// whole pages, or nothing) at the file's end, in vectored writes. A
    /// direct write the drive refuses (`EINVAL`: its blocks are larger than
    /// [`ALIGN`]) turns `O_DIRECT` off for the file and the drive, and the
    /// rest goes through the page cache.
    fn write_out(
        &mut self,
        file: &File,
        range: std::ops::Range<usize>,
        mut pages: &[u8],
        direct_ok: &AtomicBool,
    ) -> io::Result<()> {
        let mut staged = self.start + range.start..self.start + range.end;
        while !staged.is_empty() || !pages.is_empty() {
            let slices = [
                io::IoSlice::new(&self.buf[staged.clone()]),
                io::IoSlice::new(pages),
            ];
            match rustix::io::pwritev(file, &slices, self.offset) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.offset += n as u64;
                    if self.direct {
                        self.direct_bytes += n as u64;
                    }
                    let from_staged = n.min(staged.len());
                    staged.start += from_staged;
                    pages = &pages[n - from_staged..];
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::INVAL) if self.direct => {
                    set_direct(file, false)?;
                    self.direct = false;
                    direct_ok.store(false, Ordering::Relaxed);
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    /// Bytes copied into the staging window so far.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn copied(&self) -> u64 {
        self.copied
    }

    /// Bytes written with `O_DIRECT` so far.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn direct_bytes(&self) -> u64 {
        self.direct_bytes
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < MAX_BUFFERS {
            pool.push(buf);
        }
        drop(pool);
        IN_USE.fetch_sub(1, Ordering::AcqRel);
    }
}

fn set_direct(file: &File, on: bool) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(file)?;
    let flags = if on {
        flags | OFlags::DIRECT
    } else {
        flags - OFlags::DIRECT
    };
    rustix::fs::fcntl_setfl(file, flags)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Scratch directories: the system's temporary one, and tmpfs where
    /// `/dev/shm` is one.
    fn scratch_dirs() -> Vec<PathBuf> {
        let name = format!("cairn-direct-{}", std::process::id());
        let mut dirs = vec![std::env::temp_dir().join(&name)];
        let shm = std::path::Path::new("/dev/shm");
        if shm.is_dir() && on_tmpfs(shm) {
            dirs.push(shm.join(&name));
        }
        for dir in &dirs {
            std::fs::create_dir_all(dir).unwrap();
        }
        dirs
    }

    /// Whether `dir` is on tmpfs.
    fn on_tmpfs(dir: &std::path::Path) -> bool {
        const TMPFS_MAGIC: i64 = 0x0102_1994;
        let stat = rustix::fs::statfs(dir).unwrap();
        stat.f_type as i64 == TMPFS_MAGIC
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// One test, so that no other takes staging buffers meanwhile.
    #[test]
    fn issue_6_direct_shard_writes() {
        frames_of_any_size_come_back_byte_for_byte();
        a_refused_direct_write_falls_back();
        staging_buffers_are_bounded();
    }

    /// `len` bytes of `pattern(len, seed)` in a buffer, and where they start
    /// in it: at an address congruent to `offset` modulo a page when
    /// `placed` (as `Erasure::encode_placed` lays frames), one byte off it
    /// when not.
    fn lay(len: usize, seed: u8, offset: usize, placed: bool) -> (Vec<u8>, usize) {
        let mut buf = Vec::with_capacity(len + 2 * ALIGN);
        let want = (offset + usize::from(!placed)) % ALIGN;
        let start = (want + ALIGN - buf.as_ptr() as usize % ALIGN) % ALIGN;
        buf.resize(start, 0);
        buf.extend_from_slice(&pattern(len, seed));
        (buf, start)
    }

    fn frames_of_any_size_come_back_byte_for_byte() {
        for dir in scratch_dirs() {
            // tmpfs takes direct I/O from Linux 6.6 on, and refuses it before.
            let direct_expected = (!on_tmpfs(&dir)).then_some(true);
            // Frame sizes as the encoder makes them (hash + block / data),
            // and odd ones that straddle the staging buffer's edge.
            for (case, sizes) in [
                vec![32 + (512 << 10); 5],
                vec![32 + (256 << 10); 7],
                vec![32 + (128 << 10); 9],
                vec![1, STAGE - 1, 1, 4095, STAGE + 4097, 3],
                vec![STAGE, STAGE],
                vec![100_000],
                vec![PLACED_MIN, PLACED_MIN - 1, 3 * PLACED_MIN + 7],
                vec![],
            ]
            .into_iter()
            .enumerate()
            {
                for placed in [false, true] {
                    let what = format!("{} case {case}, placed {placed}", dir.display());
                    let path = dir.join(format!("case-{case}-{placed}"));
                    let file = File::create_new(&path).unwrap();
                    let direct_ok = AtomicBool::new(true);
                    let mut stage = Stage::take().expect("a staging buffer");
                    let mut expected = Vec::new();
                    for (i, size) in sizes.iter().enumerate() {
                        let (buf, start) = lay(*size, i as u8, expected.len(), placed);
                        stage.write(&file, &buf[start..], &direct_ok).unwrap();
                        expected.extend_from_slice(&buf[start..]);
                    }
                    stage.flush(&file, &direct_ok).unwrap();
                    file.sync_data().unwrap();
                    assert_eq!(std::fs::read(&path).unwrap(), expected, "{what}");
                    let went_direct = direct_ok.load(Ordering::Relaxed);
                    let aligned = (expected.len() / ALIGN * ALIGN) as u64;
                    // Frames placed and large enough are written from
                    // where they lie: at most their partial pages are
                    // copied.
                    let large = sizes.iter().all(|&size| size >= PLACED_MIN + ALIGN);
                    if placed && large && went_direct {
                        let most = (2 * ALIGN * sizes.len()) as u64;
                        assert!(stage.copied() <= most, "{what}: {} copied", stage.copied());
                    } else if !placed {
                        assert_eq!(stage.copied(), expected.len() as u64, "{what}");
                    }
                    // A file of at least one whole buffer, or with a placed
                    // frame, went around the page cache, but for its
                    // unaligned tail, unless the file system refused it.
                    let placed_one = placed && sizes.iter().any(|&size| size >= PLACED_MIN + ALIGN);
                    if expected.len() >= STAGE || placed_one {
                        assert!(direct_expected.is_none_or(|d| d == went_direct), "{what}");
                        if went_direct {
                            assert_eq!(stage.direct_bytes(), aligned, "{what}");
                        }
                    } else {
                        assert_eq!(stage.direct_bytes(), 0, "{what}");
                    }
                    if !went_direct {
                        assert_eq!(stage.direct_bytes(), 0, "{what}");
                    }
                    let flags = rustix::fs::fcntl_getfl(&file).unwrap();
                    assert!(!flags.contains(OFlags::DIRECT), "{what}: left on");
                }
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    fn staging_buffers_are_bounded() {
        let stages: Vec<Stage> = std::iter::from_fn(Stage::take)
            .take(MAX_BUFFERS + 5)
            .collect();
        assert_eq!(stages.len(), MAX_BUFFERS);
        assert!(Stage::take().is_none());
        drop(stages);
        assert!(Stage::take().is_some());
    }

    /// A direct write the drive refuses is written through the page cache,
    /// and the drive writes its later files that way too.
    fn a_refused_direct_write_falls_back() {
        let dir = scratch_dirs().remove(0);
        let path = dir.join("refused");
        let file = File::create_new(&path).unwrap();
        let direct_ok = AtomicBool::new(true);
        let mut stage = Stage::take().expect("a staging buffer");
        // A window one byte off alignment: every direct write is refused.
        stage.start = if stage.start == 0 { 1 } else { stage.start - 1 };
        let frame = pattern(2 * STAGE + 100, 7);
        stage.write(&file, &frame, &direct_ok).unwrap();
        stage.flush(&file, &direct_ok).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), frame);
        assert_eq!(stage.direct_bytes(), 0);
        assert!(!direct_ok.load(Ordering::Relaxed));
        // The same for a placed frame, written from where it lies with
        // the (misaligned) staged bytes in one vectored write.
        let path = dir.join("refused-placed");
        let file = File::create_new(&path).unwrap();
        let direct_ok = AtomicBool::new(true);
        let mut stage = Stage::take().expect("a staging buffer");
        stage.start = if stage.start == 0 { 1 } else { stage.start - 1 };
        let (small, small_at) = lay(100, 1, 0, true);
        stage.write(&file, &small[small_at..], &direct_ok).unwrap();
        let (placed, placed_at) = lay(3 * PLACED_MIN + 5, 2, 100, true);
        stage
            .write(&file, &placed[placed_at..], &direct_ok)
            .unwrap();
        stage.flush(&file, &direct_ok).unwrap();
        let expected = [&small[small_at..], &placed[placed_at..]].concat();
        assert!(std::fs::read(&path).unwrap() == expected, "refused, placed");
        assert_eq!(stage.direct_bytes(), 0);
        assert!(!direct_ok.load(Ordering::Relaxed));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
