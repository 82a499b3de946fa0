//! The table: one row per figure, printed as Markdown at the end of the run.

use crate::Settings;
use std::time::Duration;

/// One line of the table.
pub struct Row {
    pub case: &'static str,
    pub figure: String,
    pub value: String,
    pub target: &'static str,
    pub met: Option<bool>,
}

#[derive(Default)]
pub struct Report {
    pub rows: Vec<Row>,
}

impl Report {
    pub fn add(&mut self, case: &'static str, figure: impl Into<String>, value: impl Into<String>) {
        self.check(case, figure, value, "", None);
    }

    pub fn check(
        &mut self,
        case: &'static str,
        figure: impl Into<String>,
        value: impl Into<String>,
        target: &'static str,
        met: Option<bool>,
    ) {
        let row = Row {
            case,
            figure: figure.into(),
            value: value.into(),
            target,
            met,
        };
        eprintln!("  {} | {} | {}", row.case, row.figure, row.value);
        self.rows.push(row);
    }

    /// A target that could not be measured in this run: a row that says why, counted apart.
    pub fn skip(
        &mut self,
        case: &'static str,
        figure: impl Into<String>,
        target: &'static str,
        reason: &str,
    ) {
        self.check(
            case,
            figure,
            format!("not measured: {reason}"),
            target,
            None,
        );
    }
}

pub fn print_report(settings: &Settings, report: &Report, took: Duration) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let now = time::OffsetDateTime::now_utc();
    println!();
    println!(
        "## Load benchmark, {:04}-{:02}-{:02} {:02}:{:02} UTC",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute()
    );
    println!();
    println!(
        "`cargo bench --bench load` on {cores} cores ({cpu}); warm-up {} s, {} s a load case, \
         device window {} s; took {:.0} s. Server, fake and client share the {cores} cores.",
        settings.warmup.as_secs(),
        settings.measure.as_secs(),
        settings.device_window.as_secs(),
        took.as_secs_f64()
    );
    if cfg!(debug_assertions) {
        println!();
        println!(
            "**A debug build** (`cargo test --bench load`?): these figures are not the release's; \
             `cargo bench --bench load` measures the `bench` profile."
        );
    }
    println!();
    println!("| case | figure ({cores} cores) | value | target | met? |");
    println!("|---|---|---|---|---|");
    for row in &report.rows {
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        println!(
            "| {} | {} | {} | {} | {met} |",
            row.case, row.figure, row.value, row.target
        );
    }
    let missed = report.rows.iter().filter(|r| r.met == Some(false)).count();
    let checked = report.rows.iter().filter(|r| r.met.is_some()).count();
    let unmeasured = report
        .rows
        .iter()
        .filter(|r| r.met.is_none() && !r.target.is_empty())
        .count();
    println!();
    if unmeasured > 0 {
        println!(
            "{} of {checked} targets met; {unmeasured} not measured.",
            checked - missed
        );
    } else {
        println!("{} of {checked} targets met.", checked - missed);
    }
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
}

pub fn yes(met: bool) -> Option<bool> {
    Some(met)
}
