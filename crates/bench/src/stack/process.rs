//! The stack's child processes: started with the shared config and their output in a log file,
//! waited for until their `/readyz` answers, and killed when dropped (an error or a panic of the
//! bench included; a SIGKILL of the bench leaves them running).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::Command;

use super::{Process, Stack};
use crate::scenarios::Component;

impl Stack {
    pub(super) fn spawn(&mut self, component: Component, program: &Path, config: &Path) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.dir.join(format!("{}.log", component.label())))?;
        let mut cmd = Command::new(program);
        if component == Component::Upstream {
            cmd.args(["upstream", "--listen", &format!("127.0.0.1:{}", self.ports.upstream)]);
        }
        if component == Component::Nginx {
            let conf = self.dir.join("nginx.conf");
            let error_log = self.dir.join("nginx-error.log");
            cmd.arg("-p").arg(&self.dir).arg("-c").arg(&conf).arg("-e").arg(&error_log);
        }
        let child = cmd
            .env("SALLYPORT_CONFIG", config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let pid = child.id().context("a child without a pid")?;
        self.processes.push(Process { component, pid, child });
        Ok(())
    }

    /// Polls `/readyz` (the upstream: `/`) until 200; fails early when the child exits.
    pub(super) async fn wait_ready(&mut self, component: Component) -> anyhow::Result<()> {
        let path = if matches!(component, Component::Upstream | Component::Nginx) { "/" } else { "/readyz" };
        let url = format!("http://127.0.0.1:{}{path}", self.ports.of(component));
        let http = crate::client::build(1)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let log = self.dir.join(format!("{}.log", component.label()));
        loop {
            if let Some(p) = self.processes.iter_mut().find(|p| p.component == component)
                && let Some(status) = p.child.try_wait()?
            {
                bail!("{} exited at start ({status}):\n{}", component.label(), tail(&log, 15));
            }
            if let Ok(res) = http.get(&url).timeout(Duration::from_secs(2)).send().await
                && res.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} not ready after 60 s ({url}):\n{}", component.label(), tail(&log, 15));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The last `n` lines of a log file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
