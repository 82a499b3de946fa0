//! The six cases, each adding its rows to the report.

mod device;
mod pages;
mod startup;
mod storm;

pub use device::device_case;
pub use pages::{home_case, many_pages_case, spaces_case};
pub use startup::startup_case;
pub use storm::storm_case;

use crate::Settings;
use crate::client::{LoadResult, Target, load};
use std::time::Duration;

/// A load run that must have gone through without a single failed request.
pub async fn measured(settings: &Settings, what: &str, targets: &[Target]) -> LoadResult {
    measured_for(what, targets, settings.warmup, settings.measure).await
}

async fn measured_for(
    what: &str,
    targets: &[Target],
    warmup: Duration,
    window: Duration,
) -> LoadResult {
    eprintln!("{what}, {} connections…", targets.len());
    let result = load(targets, warmup, window).await;
    assert!(
        result.errors == 0 && result.requests > 0,
        "{what}: {} failed requests, {} good",
        result.errors,
        result.requests
    );
    result
}

/// Rounds of a comparison: each contender runs this many times, in turn.
const ROUNDS: u32 = 3;

/// One side of a comparison.
pub struct Contender<'a> {
    pub what: &'a str,
    pub targets: &'a [Target],
    /// The CPU time of the process that serves the targets, when it is one of its own.
    pub cpu: Option<&'a dyn Fn() -> Duration>,
}

/// What one contender did over every round.
pub struct Outcome {
    pub load: LoadResult,
    cpu: Option<Duration>,
    /// Warm-ups and windows together: the time its CPU was read over.
    busy: Duration,
}

impl Outcome {
    /// Its process's CPU time over warm-ups and windows, over the requests that time made at
    /// the windows' rate ("-" without a process of its own).
    pub fn cpu_per_request(&self) -> String {
        let requests = self.load.rps * self.busy.as_secs_f64();
        match self.cpu {
            Some(cpu) if requests > 0.0 => format!("{:.0} µs", cpu.as_secs_f64() * 1e6 / requests),
            _ => "-".to_owned(),
        }
    }

    /// One row's value: req/s, p50 and p99, the CPU a request of its process when it has one of
    /// its own, and the bytes of a response on the wire.
    pub fn line(&self) -> String {
        let cpu = match self.cpu {
            Some(_) => format!(" (its CPU {} a request)", self.cpu_per_request()),
            None => String::new(),
        };
        format!("{}{cpu}; {}", self.load.summary(), self.load.wire_summary())
    }
}

/// The contenders measured in turn, [`ROUNDS`] times over (A B C A B C A B C), each time for a
/// third of the window, after the full warm-up the first time and a shorter one for the new
/// connections after that. The machine is shared: back to back, a slow spell falls on one
/// contender and swings their ratio (0.64 to 1.05 for the same two binaries on 2026-12-02);
/// interleaved, it falls on all of them. The outcomes come in the contenders' order.
pub async fn interleaved(settings: &Settings, contenders: &[Contender<'_>]) -> Vec<Outcome> {
    let n = contenders.len();
    let window = settings.measure / ROUNDS;
    let mut runs: Vec<Vec<LoadResult>> = (0..n).map(|_| Vec::new()).collect();
    let mut cpu = vec![Duration::ZERO; n];
    let mut busy = Duration::ZERO;
    for round in 0..ROUNDS {
        let warmup = if round == 0 {
            settings.warmup
        } else {
            (settings.warmup / ROUNDS).max(Duration::from_millis(250))
        };
        for (i, contender) in contenders.iter().enumerate() {
            let before = contender.cpu.map(|clock| clock());
            runs[i].push(measured_for(contender.what, contender.targets, warmup, window).await);
            if let (Some(clock), Some(before)) = (contender.cpu, before) {
                cpu[i] += clock().saturating_sub(before);
            }
        }
        busy += warmup + window;
    }
    runs.into_iter()
        .zip(contenders)
        .zip(cpu)
        .map(|((runs, contender), cpu)| Outcome {
            load: LoadResult::combine(runs),
            cpu: contender.cpu.map(|_| cpu),
            busy,
        })
        .collect()
}
