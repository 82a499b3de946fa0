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
//! a pipe shared with another writer never gets a line cut by another's.

use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// About how long a line waits before it is written (a little longer when the output is slow).
pub const FLUSH_AFTER: Duration = Duration::from_millis(50);
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
    /// The output, and the buffer that goes out next; whoever holds it writes, so batches leave
    /// in the order they were taken.
    out: Mutex<Out>,
    /// Off before the flush thread runs and after [`LogGuard`] is dropped: every line at once.
    batched: AtomicBool,
}

struct Waiting {
    batch: Batch,
    flusher_asleep: bool,
}

struct Out {
    file: File,
    spare: Batch,
    /// The last write failed (reported once on standard error, not at every batch).
    failing: bool,
}

/// Lines, and where each event ends among them.
#[derive(Default)]
struct Batch {
    text: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    fn push(&mut self, event: &[u8]) {
        self.text.extend_from_slice(event);
        self.ends.push(self.text.len());
    }

    /// Empty again, keeping at most a batch's room.
    fn clear(&mut self) {
        self.text.clear();
        self.text.shrink_to(BATCH);
        self.ends.clear();
        self.ends.shrink_to(BATCH / 64);
    }
}

impl Lines {
    /// Lines to `file`, each written at once until [`Lines::start_flushing`].
    pub fn new(file: File) -> Self {
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
                }),
                batched: AtomicBool::new(false),
            }),
        }
    }

    /// Starts the flush thread and batches lines from now on; the guard writes what is left
    /// when dropped. Without a thread (the system refused one) every line is written at once.
    pub fn start_flushing(&self) -> LogGuard {
        let shared = Arc::clone(&self.shared);
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
        self.shared
            .batched
            .store(started.is_ok(), Ordering::Release);
        LogGuard {
            shared: Arc::clone(&self.shared),
        }
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
        self.flush_holding(lock(&self.out));
    }

    fn flush_holding(&self, mut out: MutexGuard<'_, Out>) {
        let Out {
            file,
            spare,
            failing,
        } = &mut *out;
        // The empty spare becomes the new buffer: no allocation a batch.
        std::mem::swap(&mut lock(&self.waiting).batch, spare);
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
                io::stderr(),
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
        let due = Instant::now().checked_add(FLUSH_AFTER);
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
            if let Ok(out) = shared.out.try_lock() {
                shared.flush_holding(out);
            }
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
mod tests {
    use super::*;
    use std::io::{BufRead, Read};
    use std::time::Instant;

    /// A file of its own in the temporary folder, removed when dropped.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(name: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "webex-lines-{name}-{}-{:x}",
                std::process::id(),
                rand::random::<u64>()
            ));
            Self(path)
        }

        fn file(&self) -> File {
            File::options()
                .create_new(true)
                .append(true)
                .open(&self.0)
                .unwrap()
        }

        fn text(&self) -> String {
            let mut text = String::new();
            File::open(&self.0)
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            text
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// One line as tracing-subscriber writes it: formatted, then written whole.
    fn write_line(lines: &Lines, level: Level, text: &str) {
        LineWriter {
            shared: &lines.shared,
            urgent: is_urgent(level),
        }
        .write_all(format!("{text}\n").as_bytes())
        .unwrap();
    }

    #[test]
    fn errors_are_urgent_the_rest_waits() {
        assert!(is_urgent(Level::ERROR));
        for level in [Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE] {
            assert!(!is_urgent(level), "{level}");
        }
    }

    /// Batching without its thread: lines wait; an error takes every line before it out with
    /// it, in order; the guard writes the rest and ends batching.
    #[test]
    fn lines_wait_and_an_error_takes_them_out_in_order() {
        let temp = TempFile::new("order");
        let lines = Lines::new(temp.file());
        lines.shared.batched.store(true, Ordering::Release);
        write_line(&lines, Level::INFO, "one");
        write_line(&lines, Level::WARN, "two");
        assert_eq!(temp.text(), "", "lines wait for the batch, warnings too");
        write_line(&lines, Level::ERROR, "three");
        assert_eq!(temp.text(), "one\ntwo\nthree\n");
        write_line(&lines, Level::INFO, "four");
        write_line(&lines, Level::ERROR, "five");
        assert_eq!(temp.text(), "one\ntwo\nthree\nfour\nfive\n");
        write_line(&lines, Level::INFO, "six");
        assert_eq!(temp.text(), "one\ntwo\nthree\nfour\nfive\n");
        drop(LogGuard {
            shared: Arc::clone(&lines.shared),
        });
        assert_eq!(temp.text(), "one\ntwo\nthree\nfour\nfive\nsix\n");
        write_line(&lines, Level::INFO, "seven");
        assert!(
            temp.text().ends_with("six\nseven\n"),
            "after the guard, at once"
        );
    }

    /// Before `start_flushing` (and if the thread cannot start) every line is written at once.
    #[test]
    fn unbatched_lines_are_written_at_once() {
        let temp = TempFile::new("unbatched");
        let lines = Lines::new(temp.file());
        write_line(&lines, Level::INFO, "at once");
        assert_eq!(temp.text(), "at once\n");
    }

    /// The flush thread writes a lone routine line soon after it arrived, and later ones too
    /// after it went back to sleep.
    #[test]
    fn the_flush_thread_writes_a_routine_line_soon() {
        let temp = TempFile::new("thread");
        let lines = Lines::new(temp.file());
        let _guard = lines.start_flushing();
        for (n, expected) in [(1, "first\n"), (2, "first\nsecond\n")] {
            let text = if n == 1 { "first" } else { "second" };
            write_line(&lines, Level::INFO, text);
            let deadline = Instant::now() + Duration::from_secs(10);
            while temp.text() != expected {
                assert!(Instant::now() < deadline, "line {n} never written");
                std::thread::sleep(FLUSH_AFTER / 5);
            }
        }
    }

    /// Without the flush thread (an output that does not keep up), the thread that brings the
    /// waiting lines to the most that may wait writes them itself.
    #[test]
    fn the_thread_that_fills_the_buffer_writes_it() {
        let temp = TempFile::new("full");
        let lines = Lines::new(temp.file());
        lines.shared.batched.store(true, Ordering::Release);
        let line = "x".repeat(99);
        let count = MAX_WAITING / 100;
        for _ in 0..count {
            write_line(&lines, Level::INFO, &line);
        }
        assert_eq!(temp.text(), "", "just short of the most that may wait");
        write_line(&lines, Level::INFO, &line);
        let text = temp.text();
        assert_eq!(text.len(), (count + 1) * 100);
        assert!(text.lines().all(|l| l == line));
    }

    /// Every write carries whole events (one may hold a newline) of at most `PIPE_BUF` bytes
    /// together, unless one event is longer: that one goes alone.
    #[test]
    fn writes_are_whole_events_of_at_most_a_pipe_buffer() {
        #[derive(Default)]
        struct Writes(Vec<Vec<u8>>);
        impl Write for Writes {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.push(buf.to_vec());
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let long = format!("{}\n", "L".repeat(3 * WHOLE_WRITE));
        let mut batch = Batch::default();
        for n in 0..400 {
            // Every seventh event's message holds a newline of its own.
            let newline = if n % 7 == 0 { "\n  and more" } else { "" };
            batch.push(format!("event {n}{newline}\n").as_bytes());
            if n == 150 {
                batch.push(long.as_bytes());
            }
        }
        let mut writes = Writes::default();
        write_whole_events(&mut writes, &batch.text, &batch.ends).unwrap();
        assert!(writes.0.len() > 2, "split into several writes");
        assert_eq!(writes.0.concat(), batch.text, "nothing lost or moved");
        let mut at = 0;
        for write in &writes.0 {
            at += write.len();
            assert!(batch.ends.contains(&at), "a write ends inside an event");
            assert!(
                write.len() <= WHOLE_WRITE || write == long.as_bytes(),
                "{} bytes, not the long event alone",
                write.len()
            );
        }
    }

    /// Long lines (a pipe takes them in pieces) and short ones from four threads at once, some
    /// urgent, into a pipe, batched by the thread: every line comes out whole, and each thread's
    /// in the order it wrote them.
    #[cfg(unix)]
    #[test]
    fn lines_from_many_threads_come_out_whole_long_or_short() {
        const LONG: usize = 100_000;
        let (reader, writer) = std::io::pipe().unwrap();
        let lines = Lines::new(File::from(std::os::fd::OwnedFd::from(writer)));
        let guard = lines.start_flushing();
        let read = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for line in std::io::BufReader::new(reader).lines() {
                seen.push(line.unwrap());
            }
            seen
        });
        std::thread::scope(|scope| {
            let lines = &lines;
            scope.spawn(move || {
                for n in 0..20 {
                    write_line(
                        lines,
                        Level::INFO,
                        &format!("long {n} {}", "x".repeat(LONG)),
                    );
                }
            });
            for t in 0..3 {
                scope.spawn(move || {
                    for n in 0..300 {
                        let level = if n % 50 == 0 {
                            Level::ERROR
                        } else {
                            Level::INFO
                        };
                        write_line(lines, level, &format!("short {t} {n}"));
                    }
                });
            }
        });
        drop(guard);
        // The flush thread keeps the pipe's writing end open: swap it for /dev/null so the
        // reader sees the end.
        lock(&lines.shared.out).file = File::create("/dev/null").unwrap();
        let seen = read.join().unwrap();
        assert_eq!(seen.len(), 20 + 3 * 300);
        let mut last = [None::<u16>; 3];
        for line in &seen {
            let whole = match line.split(' ').collect::<Vec<_>>()[..] {
                ["long", _, body] => body.len() == LONG && body.bytes().all(|b| b == b'x'),
                ["short", t, n] => {
                    let (t, n) = (t.parse::<usize>().unwrap(), n.parse::<u16>().unwrap());
                    // Each thread's lines in the order it wrote them.
                    assert!(last[t] < Some(n), "thread {t}: {n} after {:?}", last[t]);
                    last[t] = Some(n);
                    true
                }
                _ => false,
            };
            assert!(
                whole,
                "a line was cut or mixed: {:?}",
                &line[..line.len().min(80)]
            );
        }
    }

    /// An output that fails loses those lines (reported once, on standard error); logging goes
    /// on, and lines are written again once the output takes them.
    #[test]
    fn a_failed_write_loses_its_lines_and_logging_goes_on() {
        let temp = TempFile::new("failing");
        drop(temp.file());
        let read_only = File::open(&temp.0).unwrap();
        let lines = Lines::new(read_only);
        write_line(&lines, Level::ERROR, "lost");
        write_line(&lines, Level::ERROR, "lost too");
        assert!(lock(&lines.shared.out).failing);
        lock(&lines.shared.out).file = File::options().append(true).open(&temp.0).unwrap();
        write_line(&lines, Level::ERROR, "written");
        assert!(!lock(&lines.shared.out).failing);
        assert_eq!(temp.text(), "written\n");
    }

    /// With the hook, a panic's message comes after the lines logged before it.
    #[test]
    fn lines_logged_before_a_panic_are_written_before_its_message() {
        let temp = TempFile::new("panic");
        let lines = Lines::new(temp.file());
        lines.shared.batched.store(true, Ordering::Release);
        let guard = LogGuard {
            shared: Arc::clone(&lines.shared),
        };
        guard.write_lines_before_panic_messages();
        write_line(&lines, Level::INFO, "before the panic");
        assert_eq!(temp.text(), "");
        let panicked = std::thread::spawn(|| panic!("on purpose (a test of the log's panic hook)"));
        assert!(panicked.join().is_err());
        assert_eq!(temp.text(), "before the panic\n");
        std::mem::forget(guard);
    }
}
