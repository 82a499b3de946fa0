//! Case 6: start-up time, idle memory, binary size.

use crate::Settings;
use crate::report::{Report, mb, ms, yes};
use crate::server::{Backend, ServerProcess};
use crate::support::free_port;
use crate::support::server::SERVER_BIN;
use std::time::Duration;

pub async fn startup_case(settings: &Settings, backend: &Backend, report: &mut Report) {
    eprintln!("case 6: start-up, idle memory, binary size…");
    // Idle: a second after the first /healthz, before any other request.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = backend.server.rss();
    let mut startups = vec![backend.startup];
    for _ in 1..settings.starts {
        let store = settings.store.as_deref();
        let (server, startup) = ServerProcess::start(&backend.fake, free_port(), store).await;
        drop(server);
        startups.push(startup);
    }
    startups.sort();
    let median = startups[startups.len() / 2];
    let worst = startups[startups.len() - 1];
    report.check(
        "6 start-up",
        format!(
            "spawn → first 200 from /healthz (median of {})",
            startups.len()
        ),
        format!("{} (max {})", ms(median), ms(worst)),
        "< 100 ms",
        yes(median < Duration::from_millis(100)),
    );
    report.check(
        "6 start-up",
        "idle resident memory (1 s after start)",
        mb(idle),
        "< 30 MB",
        yes(idle < 30 * 1024 * 1024),
    );
    let size = std::fs::metadata(SERVER_BIN).map_or(0, |m| m.len());
    report.add("6 start-up", "release binary size", mb(size));
}
