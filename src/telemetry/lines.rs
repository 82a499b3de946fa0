//! Where log lines go: one file, pipe or socket (standard output), in batches written off the
//! request path, every line whole and in order.
//!
//! Written one `write` a line, the response line cost every request a system call on the worker
//! that served it. Here a line at `INFO` or below is appended to a buffer and a thread of its own
//! writes the buffer [`FLUSH_AFTER`] after the first line arrived in it (or the thread that
//! fills it to [`BATCH`] bytes writes it). A `WARN` or `ERROR` line is written at once, with
//! every line before it. The flush thread sleeps while nothing waits: an idle server never wakes.
//! [`LogGuard`] writes what is left when `main` ends, and every line after that at once.
//!
//! Each `write` carries whole lines, at most `PIPE_BUF` bytes of them unless one line is longer,
//! which the kernel writes to a pipe in one piece: a pipe shared with another writer never gets
//! a line cut by another's.

use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// The longest a routine line waits before it is written.
pub const FLUSH_AFTER: Duration = Duration::from_millis(50);
/// Waiting lines are written by the thread that brings them to this many bytes (a busy server
/// writes about 5 MB of response lines a second: the flush thread writes most of them).
const BATCH: usize = 256 * 1024;
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
    /// Told when a line arrives in an empty buffer while the flush thread sleeps.
    arrived: Condvar,
    /// The output, and the buffer that goes out next; whoever holds it writes, so batches leave
    /// in the order they were taken.
    out: Mutex<Out>,
    /// Off before the flush thread runs and after [`LogGuard`] is dropped: every line at once.
    batched: AtomicBool,
}

struct Waiting {
    text: Vec<u8>,
    flusher_asleep: bool,
}

struct Out {
    file: File,
    spare: Vec<u8>,
}

impl Lines {
    /// Lines to `file`, each written at once until [`Lines::start_flushing`].
    pub fn new(file: File) -> Self {
        Self {
            shared: Arc::new(Shared {
                waiting: Mutex::new(Waiting {
                    text: Vec::new(),
                    flusher_asleep: false,
                }),
                arrived: Condvar::new(),
                out: Mutex::new(Out {
                    file,
                    spare: Vec::new(),
                }),
                batched: AtomicBool::new(false),
            }),
        }
    }

    /// Starts the flush thread and batches routine lines from now on; the guard writes what is
    /// left when dropped. Without a thread (the system refused one) every line is written at
    /// once, as before.
    pub fn start_flushing(&self) -> LogGuard {
        let shared = Arc::clone(&self.shared);
        let started = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || {
                loop {
                    shared.wait_for_lines();
                    std::thread::sleep(FLUSH_AFTER);
                    // A failed write has nowhere to be reported; the next batch tries again.
                    let _ = shared.flush();
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
    fn push(&self, line: &[u8], urgent: bool) -> io::Result<()> {
        let mut waiting = lock(&self.waiting);
        if waiting.text.is_empty() && waiting.flusher_asleep {
            waiting.flusher_asleep = false;
            self.arrived.notify_one();
        }
        waiting.text.extend_from_slice(line);
        let now = urgent || waiting.text.len() >= BATCH || !self.batched.load(Ordering::Acquire);
        drop(waiting);
        if now { self.flush() } else { Ok(()) }
    }

    /// Takes every waiting line and writes it, in turn with any other flush.
    fn flush(&self) -> io::Result<()> {
        let mut out = lock(&self.out);
        let Out { file, spare } = &mut *out;
        // The empty spare becomes the new buffer: no allocation a batch.
        std::mem::swap(&mut lock(&self.waiting).text, spare);
        let written = write_whole_lines(file, spare);
        spare.clear();
        spare.shrink_to(BATCH);
        written
    }

    /// Returns once a line waits, asleep until then.
    fn wait_for_lines(&self) {
        let mut waiting = lock(&self.waiting);
        while waiting.text.is_empty() {
            waiting.flusher_asleep = true;
            waiting = self
                .arrived
                .wait(waiting)
                .unwrap_or_else(PoisonError::into_inner);
        }
        waiting.flusher_asleep = false;
    }
}

/// A lock whose holder panicked is still good: the buffer and the file hold no invariant a panic
/// could break halfway (at worst a line is lost).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `text` (whole lines) in `write`s that each end at the end of a line and carry at most
/// [`WHOLE_WRITE`] bytes, or one line alone when it is longer.
fn write_whole_lines(out: &mut impl Write, mut text: &[u8]) -> io::Result<()> {
    while !text.is_empty() {
        let end = if text.len() <= WHOLE_WRITE {
            text.len()
        } else {
            match text[..WHOLE_WRITE].iter().rposition(|&b| b == b'\n') {
                Some(newline) => newline + 1,
                None => text
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(text.len(), |newline| newline + 1),
            }
        };
        out.write_all(&text[..end])?;
        text = &text[end..];
    }
    Ok(())
}

/// Writes the waiting lines when dropped (at the end of `main`), and every line after at once.
#[must_use = "dropping the guard ends batching: hold it until the program ends"]
pub struct LogGuard {
    shared: Arc<Shared>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.batched.store(false, Ordering::Release);
        let _ = self.shared.flush();
    }
}

/// One line's way in: tracing-subscriber formats the line, then writes it here in one piece.
pub struct LineWriter<'a> {
    shared: &'a Shared,
    urgent: bool,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.shared.push(line, self.urgent)?;
        Ok(line.len())
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

    /// `WARN` and `ERROR` lines are written at once; the rest wait for the next batch.
    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> LineWriter<'a> {
        LineWriter {
            shared: &self.shared,
            urgent: is_urgent(*meta.level()),
        }
    }
}

/// `WARN` and `ERROR` (tracing orders levels by verbosity: `ERROR` is the least).
fn is_urgent(level: Level) -> bool {
    level <= Level::WARN
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
    fn warnings_and_errors_are_urgent_the_rest_waits() {
        assert!(is_urgent(Level::ERROR) && is_urgent(Level::WARN));
        assert!(!is_urgent(Level::INFO) && !is_urgent(Level::DEBUG) && !is_urgent(Level::TRACE));
    }

    /// Batching without its thread: routine lines wait; a warning or an error takes every line
    /// before it out with it, in order; the guard writes the rest and ends batching.
    #[test]
    fn routine_lines_wait_and_a_warning_or_error_takes_them_out_in_order() {
        let temp = TempFile::new("order");
        let lines = Lines::new(temp.file());
        lines.shared.batched.store(true, Ordering::Release);
        write_line(&lines, Level::INFO, "one");
        write_line(&lines, Level::INFO, "two");
        assert_eq!(temp.text(), "", "routine lines wait for the batch");
        write_line(&lines, Level::WARN, "three");
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

    /// A thread that fills the buffer to a batch writes it itself, without the flush thread.
    #[test]
    fn a_full_batch_is_written_by_the_thread_that_fills_it() {
        let temp = TempFile::new("full");
        let lines = Lines::new(temp.file());
        lines.shared.batched.store(true, Ordering::Release);
        let line = "x".repeat(99);
        let count = BATCH / 100;
        for _ in 0..count {
            write_line(&lines, Level::INFO, &line);
        }
        assert_eq!(temp.text(), "", "just short of a batch: waiting");
        write_line(&lines, Level::INFO, &line);
        let text = temp.text();
        assert_eq!(text.len(), (count + 1) * 100);
        assert!(text.lines().all(|l| l == line));
    }

    /// Every write ends at the end of a line and carries at most `PIPE_BUF` bytes, unless one
    /// line is longer: that one goes alone.
    #[test]
    fn writes_are_whole_lines_of_at_most_a_pipe_buffer() {
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
        let mut text = String::new();
        for n in 0..400 {
            text.push_str(&format!("short line {n}\n"));
            if n == 150 {
                text.push_str(&long);
            }
        }
        let mut writes = Writes::default();
        write_whole_lines(&mut writes, text.as_bytes()).unwrap();
        assert!(writes.0.len() > 2, "split into several writes");
        assert_eq!(writes.0.concat(), text.as_bytes(), "nothing lost or moved");
        for write in &writes.0 {
            assert_eq!(write.last(), Some(&b'\n'), "ends at a line's end");
            assert!(
                write.len() <= WHOLE_WRITE || write == long.as_bytes(),
                "{} bytes, not the long line alone",
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
                            Level::WARN
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
}
