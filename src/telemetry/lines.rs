//! Where log lines go: one file, pipe or socket (standard output), in batches written off the
//! request path, every line whole and in order.
//!
//! Written one `write` a line, the response line cost every request a system call on the worker
//! that served it. Here a line is appended to a buffer, and a thread of its own writes the
//! buffer about [`FLUSH_AFTER`] after the first line arrived in it, or as soon as [`BATCH`] bytes
//! wait. An `ERROR` line is written at once by the thread that logs it, with every line before
//! it, and so is everything once [`MAX_WAITING`] bytes wait (an output slower than the log makes
//! the loggers wait for it, as they did before). The flush thread sleeps while nothing waits: an
//! idle server never wakes. [`LogGuard`] writes what is left when `main` ends, and lines logged
//! before a panic before its message.
//!
//! Each `write` carries whole lines (whole events: a message may hold a newline), at most
//! `PIPE_BUF` bytes of them unless one is longer, which the kernel writes to a pipe in one piece:
//! in a pipe shared with another writer no line of up to `PIPE_BUF` bytes is cut by another's.

use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// About how long a line waits before it is written (a little longer when the output is slow).
const FLUSH_AFTER: Duration = Duration::from_millis(50);
/// The flush thread writes as soon as this many bytes wait (a busy server logs about 5 MB of
/// response lines a second).
const BATCH: usize = 64 * 1024;
/// Past this many waiting bytes the thread that logs writes them itself: the output is not
/// keeping up, and memory stays bounded.
const MAX_WAITING: usize = 1024 * 1024;
/// The most a pipe takes in one piece (`PIPE_BUF`): 4096 bytes on Linux, POSIX's 512 elsewhere.
const WHOLE_WRITE: usize = if cfg!(target_os = "linux") { 4096 } else { 512 };

/// The log's output, shared by every thread that logs (a [`MakeWriter`]).
#[derive(Clone)]
pub struct Lines {
    shared: Arc<Shared>,
}

struct Shared {
    /// Lines not written yet.
    waiting: Mutex<Waiting>,
    /// Told when the flush thread sleeps and a line arrives in an empty buffer, or a batch is
    /// full.
    arrived: Condvar,
    /// The output, and the empty buffer that replaces the waiting one at the next flush;
    /// whoever holds it writes, so batches leave in the order they were taken.
    out: Mutex<Out>,
    /// Off until the flush thread is started, and once [`LogGuard`] is dropped or the thread
    /// ends: then every line is written at once.
    batched: AtomicBool,
    /// How long the first waiting line waits ([`FLUSH_AFTER`]; longer in a test).
    flush_after: Duration,
}

struct Waiting {
    batch: Batch,
    flusher_asleep: bool,
}

struct Out {
    file: File,
    spare: Batch,
    /// The last write failed (reported once, not at every batch).
    failing: bool,
    /// Where a failure is reported: standard error.
    report: Box<dyn Write + Send>,
}

/// Lines, and where each event ends among them.
#[derive(Default)]
struct Batch {
    text: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    fn push(&mut self, event: &[u8]) {
        if event.is_empty() {
            return;
        }
        self.text.extend_from_slice(event);
        self.ends.push(self.text.len());
    }

    /// Empty again, keeping room for a batch (which runs a little past [`BATCH`] before the
    /// flush thread takes it), not for a burst.
    fn clear(&mut self) {
        self.text.clear();
        self.text.shrink_to(2 * BATCH);
        self.ends.clear();
        self.ends.shrink_to(2 * BATCH / 64);
    }
}

impl Lines {
    /// Lines to `file`, each written at once until [`Lines::start_flushing`].
    pub fn new(file: File) -> Self {
        Self::waiting_at_most(file, FLUSH_AFTER)
    }

    /// As [`Lines::new`], the first waiting line written `flush_after` after it arrived.
    fn waiting_at_most(file: File, flush_after: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                waiting: Mutex::new(Waiting {
                    batch: Batch::default(),
                    flusher_asleep: false,
                }),
                arrived: Condvar::new(),
                out: Mutex::new(Out {
                    file,
                    spare: Batch::default(),
                    failing: false,
                    report: Box::new(io::stderr()),
                }),
                batched: AtomicBool::new(false),
                flush_after,
            }),
        }
    }

    /// Starts the flush thread and batches lines from now on; the guard writes what is left
    /// when dropped. Without a thread (the system refused one) every line is written at once.
    pub fn start_flushing(&self) -> LogGuard {
        let shared = Arc::clone(&self.shared);
        // On before the thread starts, so that a thread ending at once leaves it off.
        self.shared.batched.store(true, Ordering::Release);
        let started = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || {
                // Should this thread ever end, lines are written at once from then on.
                let _unbatch = LogGuard {
                    shared: Arc::clone(&shared),
                };
                loop {
                    shared.wait_for_batch();
                    shared.flush();
                }
            });
        let guard = LogGuard {
            shared: Arc::clone(&self.shared),
        };
        if started.is_err() {
            self.shared.batched.store(false, Ordering::Release);
        }
        guard
    }
}

impl Shared {
    fn push(&self, event: &[u8], urgent: bool) {
        let mut waiting = lock(&self.waiting);
        // Read under the lock: a guard dropped meanwhile either finds this line when it flushes
        // or has turned batching off before this thread looks.
        let batched = self.batched.load(Ordering::Acquire);
        let was_empty = waiting.batch.text.is_empty();
        waiting.batch.push(event);
        let size = waiting.batch.text.len();
        if batched && waiting.flusher_asleep && (was_empty || size >= BATCH) {
            waiting.flusher_asleep = false;
            self.arrived.notify_one();
        }
        drop(waiting);
        if urgent || !batched || size >= MAX_WAITING {
            self.flush();
        }
    }

    /// Takes every waiting line and writes it, in turn with any other flush.
    fn flush(&self) {
        let out = lock(&self.out);
        self.write_batch(out, lock(&self.waiting));
    }

    /// As [`Shared::flush`], unless a lock is held (by this very thread, in a panic): then
    /// nothing, rather than waiting for ever.
    fn try_flush(&self) {
        let Some(out) = try_lock(&self.out) else {
            return;
        };
        if let Some(waiting) = try_lock(&self.waiting) {
            self.write_batch(out, waiting);
        }
    }

    /// Takes the waiting batch (the lock on it is let go at once) and writes it.
    fn write_batch(&self, mut out: MutexGuard<'_, Out>, mut waiting: MutexGuard<'_, Waiting>) {
        let Out {
            file,
            spare,
            failing,
            report,
        } = &mut *out;
        // The empty spare becomes the new buffer: no allocation a batch.
        std::mem::swap(&mut waiting.batch, spare);
        drop(waiting);
        if spare.text.is_empty() {
            return;
        }
        let written = write_whole_events(file, &spare.text, &spare.ends);
        spare.clear();
        if let Err(err) = &written
            && !*failing
        {
            // Not `eprintln!`, which panics when standard error fails too.
            let _ = writeln!(
                report,
                "log lines lost: cannot write them to standard output: {err}"
            );
        }
        *failing = written.is_err();
    }

    /// Returns when lines should be written: [`FLUSH_AFTER`] after the first arrived, or as soon
    /// as [`BATCH`] bytes wait. Asleep until then.
    fn wait_for_batch(&self) {
        let mut waiting = lock(&self.waiting);
        while waiting.batch.text.is_empty() {
            waiting.flusher_asleep = true;
            waiting = self
                .arrived
                .wait(waiting)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let due = Instant::now().checked_add(self.flush_after);
        loop {
            let left = due.map_or(Duration::ZERO, |due| {
                due.saturating_duration_since(Instant::now())
            });
            if left.is_zero() || waiting.batch.text.len() >= BATCH {
                break;
            }
            waiting.flusher_asleep = true;
            waiting = match self.arrived.wait_timeout(waiting, left) {
                Ok((waiting, _)) => waiting,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        waiting.flusher_asleep = false;
    }
}

/// A lock whose holder panicked is still good: the buffer and the file hold no invariant a panic
/// could break halfway (at worst a line is lost).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// [`lock`], unless another holds it: `None`.
fn try_lock<T>(mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match mutex.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// `text` in `write`s of whole events (each ends at an offset in `ends`), each at most
/// [`WHOLE_WRITE`] bytes, or one event alone when it is longer.
fn write_whole_events(out: &mut impl Write, text: &[u8], ends: &[usize]) -> io::Result<()> {
    let (mut start, mut end) = (0, 0);
    for &event_end in ends {
        if event_end - start > WHOLE_WRITE && end > start {
            out.write_all(&text[start..end])?;
            start = end;
        }
        end = event_end;
    }
    if end > start {
        out.write_all(&text[start..end])?;
    }
    Ok(())
}

/// Writes the waiting lines when dropped (at the end of `main`), and every line after at once.
#[must_use = "dropping the guard ends batching: hold it until the program ends"]
pub struct LogGuard {
    shared: Arc<Shared>,
}

impl LogGuard {
    /// Lines logged before a panic are written before its message (which goes to standard
    /// error at once), unless another thread is writing lines at that moment.
    pub fn write_lines_before_panic_messages(&self) {
        let shared = Arc::clone(&self.shared);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            shared.try_flush();
            previous(info);
        }));
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.batched.store(false, Ordering::Release);
        self.shared.flush();
    }
}

/// One event's way in: tracing-subscriber formats the event's line, then writes it here in one
/// piece. A failed write is reported by the flush (once, on standard error), not here.
pub struct LineWriter<'a> {
    shared: &'a Shared,
    urgent: bool,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, event: &[u8]) -> io::Result<usize> {
        self.shared.push(event, self.urgent);
        Ok(event.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        LineWriter {
            shared: &self.shared,
            urgent: true,
        }
    }

    /// `ERROR` lines are written at once; the rest wait for the next batch (warnings too: a
    /// client can cause them, a refused host or a rate limit, by the thousand).
    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> LineWriter<'a> {
        LineWriter {
            shared: &self.shared,
            urgent: is_urgent(*meta.level()),
        }
    }
}

/// `ERROR` only (tracing orders levels by verbosity: `ERROR` is the least).
fn is_urgent(level: Level) -> bool {
    level == Level::ERROR
}

#[cfg(test)]
mod tests;
