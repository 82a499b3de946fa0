//! The text log line: tracing-subscriber's default ("full") format, character for character,
//! written with plain string writes.
//!
//! The default format writes each piece through `write!` and its (colourless) style wrappers: a
//! field of the request's span cost about 700 instructions, the response line about 5,200, and
//! the message was escaped one `char` at a time. Here each piece is one `write_str`, a field's
//! value is the one `write!`, and the message is searched for the characters to escape before it
//! is written whole. A test holds the two formats to the same lines.

use std::fmt::{self, Debug, Write as _};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The fields of a span or an event as `name=value`, separated by spaces (a [`FormatFields`]).
#[derive(Debug, Default)]
pub struct TextFields;

impl<'w> MakeVisitor<Writer<'w>> for TextFields {
    type Visitor = TextVisitor<'w>;

    fn make_visitor(&self, writer: Writer<'w>) -> TextVisitor<'w> {
        TextVisitor {
            writer,
            empty: true,
            result: Ok(()),
        }
    }
}

/// Writes fields as tracing-subscriber's `DefaultVisitor` does.
pub struct TextVisitor<'w> {
    writer: Writer<'w>,
    empty: bool,
    result: fmt::Result,
}

impl TextVisitor<'_> {
    fn pad(&mut self) -> fmt::Result {
        if self.empty {
            self.empty = false;
            Ok(())
        } else {
            self.writer.write_char(' ')
        }
    }
}

impl Visit for TextVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    /// An error and its sources, as the default visitor writes them (rare: not worth a copy).
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        let mut default = DefaultVisitor::new(self.writer.by_ref(), self.empty);
        default.record_error(field, value);
        self.result = default.finish();
        self.empty = false;
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        let name = field.name();
        // The `log` crate's metadata, already written as the line's target and level.
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        self.result = self.pad().and_then(|()| match name {
            "message" if self.writer.sanitizes_ansi_escapes() => {
                write!(Escaped(&mut self.writer), "{value:?}")
            }
            "message" => write!(self.writer, "{value:?}"),
            name => {
                let name = name.strip_prefix("r#").unwrap_or(name);
                self.writer.write_str(name)?;
                self.writer.write_char('=')?;
                write!(self.writer, "{value:?}")
            }
        });
    }
}

impl VisitOutput<fmt::Result> for TextVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for TextVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

/// A message with the characters a terminal could act on written as escapes, as
/// tracing-subscriber writes them: ESC, BEL, BS, FF and DEL as `\x1b` and so on, the C1 controls
/// (U+0080 to U+009F) as `\u{9b}`.
struct Escaped<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for Escaped<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        // In UTF-8 every C1 control starts with the byte 0xC2: most text has nothing to escape.
        if !text
            .bytes()
            .any(|b| matches!(b, 0x1b | 0x07 | 0x08 | 0x0c | 0x7f | 0xc2))
        {
            return self.0.write_str(text);
        }
        let mut clean = 0;
        for (at, ch) in text.char_indices() {
            let escape = match ch {
                '\x1b' => "\\x1b",
                '\x07' => "\\x07",
                '\x08' => "\\x08",
                '\x0c' => "\\x0c",
                '\x7f' => "\\x7f",
                '\u{80}'..='\u{9f}' => "",
                _ => continue,
            };
            self.0.write_str(&text[clean..at])?;
            if escape.is_empty() {
                write!(self.0, "\\u{{{:x}}}", u32::from(ch))?;
            } else {
                self.0.write_str(escape)?;
            }
            clean = at + ch.len_utf8();
        }
        self.0.write_str(&text[clean..])
    }
}

/// The whole line: time, level, the spans from the root with their fields, target, fields.
#[derive(Debug, Default)]
pub struct TextLine<T> {
    pub timer: T,
}

impl<S, N, T> FormatEvent<S, N> for TextLine<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    T: FormatTime,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // An event from the `log` crate: its own target and level, not the bridge's.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        if self.timer.format_time(&mut writer).is_err() {
            writer.write_str("<unknown time>")?;
        }
        writer.write_str(match *meta.level() {
            Level::TRACE => " TRACE ",
            Level::DEBUG => " DEBUG ",
            Level::INFO => "  INFO ",
            Level::WARN => "  WARN ",
            Level::ERROR => " ERROR ",
        })?;
        if let Some(scope) = ctx.event_scope() {
            let mut seen = false;
            for span in scope.from_root() {
                writer.write_str(span.metadata().name())?;
                seen = true;
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    writer.write_char('{')?;
                    writer.write_str(fields)?;
                    writer.write_char('}')?;
                }
                writer.write_char(':')?;
            }
            if seen {
                writer.write_char(' ')?;
            }
        }
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::{LineTime, Written};

    /// The lines written, each without its time (the two subscribers run at different instants).
    fn lines(written: &Written) -> Vec<String> {
        written
            .text()
            .lines()
            .map(|line| {
                let (time, rest) = line.split_once(' ').unwrap();
                assert_eq!(time.len(), "2026-12-03T10:24:00.123456Z".len(), "{line}");
                rest.to_owned()
            })
            .collect()
    }

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer failed")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[derive(Debug)]
    #[allow(dead_code)] // read through Debug only
    struct Shape {
        name: &'static str,
        sides: u8,
    }

    /// Every kind of field and line the app writes, and the awkward ones.
    fn log_everything() {
        tracing::info!("plain message");
        tracing::info!(count = 3u64, ratio = 0.25f64, "with fields");
        let request = tracing::info_span!(
            "request",
            method = %"GET",
            path = %"/spaces",
            request_id = %"4f1c2a9e-6b1d-4c3e-9a7b-2d5e8f0a1b2c",
        );
        let entered = request.enter();
        tracing::info!(status = 200u16, latency_ms = 0.412f64, "response");
        tracing::info!(status = 200u16, latency_ms = 12.0f64, "response");
        let inner =
            tracing::debug_span!("poll", flow = "a1b2c3d4", attempt = tracing::field::Empty);
        inner.record("attempt", 2u64);
        inner.in_scope(|| {
            tracing::warn!(
                quoted = "a \"string\"",
                negative = -7i64,
                flag = true,
                shape = ?Shape { name: "square", sides: 4 },
                r#type = "keyword",
                "nested \x1b[31mred\x1b[0m, bell \x07, C1 \u{9b} and DEL \x7f, é ✓"
            );
        });
        let err = Outer(std::io::Error::other("disk \x1b full"));
        tracing::error!(err = &err as &(dyn std::error::Error + 'static), "failed");
        let plain = std::io::Error::other("no source");
        tracing::error!(%plain, error = &plain as &(dyn std::error::Error + 'static));
        drop(entered);
        let empty = tracing::info_span!("empty");
        empty.in_scope(|| tracing::trace!(n = 1u8));
        tracing::debug!(message = "a message field given as a str", extra = ?'x');
    }

    #[test]
    fn lines_are_the_default_formats_character_for_character() {
        let theirs = Written::default();
        let reference = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_timer(LineTime)
            .with_max_level(Level::TRACE)
            .with_writer(theirs.clone())
            .finish();
        tracing::subscriber::with_default(reference, log_everything);

        let ours = Written::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(Level::TRACE)
            .fmt_fields(TextFields)
            .event_format(TextLine { timer: LineTime })
            .with_writer(ours.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log_everything);

        let (ours, theirs) = (lines(&ours), lines(&theirs));
        assert_eq!(theirs.len(), 9, "{theirs:#?}");
        for (ours, theirs) in ours.iter().zip(&theirs) {
            assert_eq!(ours, theirs);
        }
        assert_eq!(ours.len(), theirs.len());
        // The escapes really were made (by both).
        assert!(
            ours[4].contains(r"nested \x1b[31mred\x1b[0m, bell \x07, C1 \u{9b} and DEL \x7f, é ✓")
        );
    }

    #[test]
    fn a_message_with_nothing_to_escape_is_written_whole() {
        let mut out = String::new();
        let mut writer = Writer::new(&mut out);
        for text in ["plain", "é ✓ ünïcödé", "", "\u{a0}\u{c2}"] {
            Escaped(&mut writer).write_str(text).unwrap();
        }
        Escaped(&mut writer).write_str("\u{85}\x1b").unwrap();
        assert_eq!(out, "plainé ✓ ünïcödé\u{a0}\u{c2}\\u{85}\\x1b");
    }
}
