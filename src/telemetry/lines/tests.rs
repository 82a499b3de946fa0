//! The batched log writer's tests: order, the flush thread, the caps, whole writes, failures.

use super::*;
use crate::telemetry::Written;
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

/// An output that fails loses those lines (reported once, on standard error, until a write
/// succeeds again); logging goes on, and lines are written again once the output takes them.
#[test]
fn a_failed_write_loses_its_lines_and_logging_goes_on() {
    let reports = Written::default();
    let count = || {
        reports
            .text()
            .matches("log lines lost: cannot write them to standard output")
            .count()
    };
    let temp = TempFile::new("failing");
    drop(temp.file());
    let read_only = || File::open(&temp.0).unwrap();
    let lines = Lines::new(read_only());
    lock(&lines.shared.out).report = Box::new(reports.clone());
    write_line(&lines, Level::ERROR, "lost");
    write_line(&lines, Level::ERROR, "lost too");
    assert!(lock(&lines.shared.out).failing);
    assert_eq!(count(), 1, "reported once, not at every batch");
    lock(&lines.shared.out).file = File::options().append(true).open(&temp.0).unwrap();
    write_line(&lines, Level::ERROR, "written");
    assert!(!lock(&lines.shared.out).failing);
    assert_eq!(temp.text(), "written\n");
    // A new failure after a success is reported again.
    lock(&lines.shared.out).file = read_only();
    write_line(&lines, Level::ERROR, "lost again");
    assert_eq!(count(), 2);
}

/// The hook writes the lines logged before a panic, then lets the hook before it write the
/// message: that one finds the lines already written.
#[test]
fn lines_logged_before_a_panic_are_written_before_its_message() {
    let temp = TempFile::new("panic");
    let lines = Lines::new(temp.file());
    lines.shared.batched.store(true, Ordering::Release);
    let guard = LogGuard {
        shared: Arc::clone(&lines.shared),
    };
    // Stands for the default hook, which prints the message: what had been written by then.
    let seen = Arc::new(Mutex::new(None));
    let (path, seen_by_hook) = (temp.0.clone(), Arc::clone(&seen));
    std::panic::set_hook(Box::new(move |_| {
        *lock(&seen_by_hook) = std::fs::read_to_string(&path).ok();
    }));
    guard.write_lines_before_panic_messages();
    write_line(&lines, Level::INFO, "before the panic");
    assert_eq!(temp.text(), "");
    let panicked = std::thread::spawn(|| panic!("on purpose (a test of the log's panic hook)"));
    assert!(panicked.join().is_err());
    // Back to the default hook for the other tests of this process.
    drop(std::panic::take_hook());
    assert_eq!(lock(&seen).as_deref(), Some("before the panic\n"));
    drop(guard);
}

/// The flush thread writes as soon as a batch waits, without waiting for the first line's time
/// (an hour here, so only the batch can have woken it).
#[test]
fn a_full_batch_wakes_the_flush_thread() {
    let temp = TempFile::new("batch");
    let lines = Lines::waiting_at_most(temp.file(), Duration::from_secs(3600));
    let _guard = lines.start_flushing();
    let line = "y".repeat(99);
    let count = BATCH / 100 + 1;
    for _ in 0..count {
        write_line(&lines, Level::INFO, &line);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while temp.text().len() < count * 100 {
        assert!(Instant::now() < deadline, "the batch was never written");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(temp.text().len(), count * 100);
}
