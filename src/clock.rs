//! Wall-clock time as Unix seconds and milliseconds, the unit every store record uses, and
//! Webex's RFC 3339 timestamps, read defensively and shown readably.

use std::time::{SystemTime, UNIX_EPOCH};
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    unix_now_ms() / 1000
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A point in time Webex sent as RFC 3339 (`2026-03-02T09:15:12.481Z`), kept in UTC and shown
/// readably ([`Timestamp::short`], [`Timestamp::exact`]); orders by instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// `None` for anything that is not RFC 3339 (or falls outside the years `time` handles).
    pub fn parse(text: &str) -> Option<Self> {
        let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
        at.checked_to_offset(UtcOffset::UTC).map(Self)
    }

    /// "2 Mar 2026, 09:15 UTC"
    pub fn short(self) -> String {
        self.0.format(SHORT).unwrap_or_default()
    }

    /// "2 Mar 2026, 09:15:12 UTC"
    pub fn exact(self) -> String {
        self.0.format(EXACT).unwrap_or_default()
    }
}

/// How a page shows a time (always UTC: [`Timestamp::parse`] converts).
const SHORT: &[BorrowedFormatItem<'_>] = format_description!(
    "[day padding:none] [month repr:short] [year padding:none], [hour]:[minute] UTC"
);
const EXACT: &[BorrowedFormatItem<'_>] = format_description!(
    "[day padding:none] [month repr:short] [year padding:none], [hour]:[minute]:[second] UTC"
);

#[cfg(test)]
mod tests {
    use super::Timestamp;

    #[test]
    fn webex_timestamps_read_as_dates_in_utc_at_every_width() {
        for (text, exact) in [
            ("2026-03-02T09:15:12.481Z", "2 Mar 2026, 09:15:12"),
            // Another offset is shown in UTC.
            ("2026-12-31T23:30:00-01:00", "1 Jan 2027, 00:30:00"),
            ("0987-01-09T00:05:07Z", "9 Jan 987, 00:05:07"),
            ("9999-12-31T23:59:59Z", "31 Dec 9999, 23:59:59"),
            ("0000-10-20T10:00:00Z", "20 Oct 0, 10:00:00"),
        ] {
            let at = Timestamp::parse(text).unwrap();
            assert_eq!(at.exact(), format!("{exact} UTC"));
            assert_eq!(at.short(), format!("{} UTC", &exact[..exact.len() - 3]));
        }
        let later = Timestamp::parse("2026-12-31T23:30:00-01:00").unwrap();
        assert!(later > Timestamp::parse("2026-03-02T09:15:12Z").unwrap());
    }

    #[test]
    fn anything_else_is_not_a_timestamp() {
        for text in [
            "",
            "yesterday",
            "2026-03-02",
            "2026-13-02T09:15:12Z",
            "2026-03-02T09:15:12",
            "9999-12-31T23:59:59-23:59",
            "2026-03-02T09:15:12.481Z\u{202e}",
        ] {
            assert!(Timestamp::parse(text).is_none(), "{text:?}");
        }
    }
}
