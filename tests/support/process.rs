//! A child process in a process group of its own, killed whole when dropped, and a free port.

use std::future::Future;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

/// A spawned process, leader of its own process group (whatever it starts joins the group);
/// the whole group is killed when the guard is dropped, also while unwinding from a panic.
///
/// The group is killed with `pkill -KILL -g PGID`, never `kill -KILL -PGID`: procps' `kill` can
/// read a negative number as an option and then signal far more than this group. The leader is
/// never reaped before its group is signalled, so the group id cannot have been reused.
pub struct ChildGuard {
    child: Child,
    what: String,
    /// The leader was reaped: its group id may be reused, so nothing is signalled any more.
    reaped: bool,
    status: Option<ExitStatus>,
}

impl ChildGuard {
    /// Spawns `command` as the leader of a new process group; `what` names it in messages.
    pub fn spawn(what: &str, command: &mut Command) -> Self {
        let child = command
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Self {
            child,
            what: what.to_owned(),
            reaped: false,
            status: None,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child's stdin, when it was spawned with `Stdio::piped()` (once; dropping it closes it).
    pub fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.stdin.take()
    }

    /// Whether the leader has exited. It is not reaped (a zombie keeps its group id taken).
    pub fn has_exited(&self) -> bool {
        if self.reaped {
            return true;
        }
        // `/proc/PID/stat`: "PID (name) STATE ..."; gone, a zombie (Z) or dead (X) is exited.
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.id()));
        match stat
            .as_deref()
            .map(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start()))
        {
            Ok(Some(rest)) => rest.starts_with(['Z', 'X']),
            _ => true,
        }
    }

    /// Polls `ready` every `every` until it holds. Panics at once if the process exits first,
    /// and after `deadline`.
    pub async fn wait_ready<F, Fut>(&self, deadline: Duration, every: Duration, mut ready: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let this = self;
        let what = format!("{} to be ready", this.what);
        super::wait_until(&what, deadline, every, || {
            let ready = ready();
            async move {
                if ready.await {
                    return true;
                }
                assert!(!this.has_exited(), "{} exited while starting", this.what);
                false
            }
        })
        .await;
    }

    /// Kills the whole process group now and reaps the leader; its exit status. Idempotent.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        if !self.reaped {
            let _ = Command::new("pkill")
                .args(["-KILL", "-g", &self.id().to_string()])
                .status();
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
            self.reaped = true;
        }
        self.status
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port nobody listens on now (the listener that found it is closed again).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}
