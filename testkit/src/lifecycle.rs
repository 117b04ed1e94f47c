//! What the fault tests do to a server's processes: kill, restart, terminate, measure.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::server::{Process, Role, Server};

impl Server {
    /// `kill -9` every process, then start each again on its port with the same data.
    pub fn crash_and_restart(&mut self) {
        self.kill9();
        let previous: Vec<Process> = self.processes.drain(..).collect();
        for process in previous {
            wait_until_free(&process.address);
            wait_until_free(&process.internal);
            self.launch(process.role, &process.address, &process.internal);
        }
    }

    /// `kill -9` the `index`-th process of a role (it stays down).
    pub fn kill_one(&mut self, role: Role, index: usize) {
        let process =
            self.processes.iter_mut().filter(|p| p.role == role || p.role == Role::Dev).nth(index);
        if let Some(mut child) = process.and_then(|p| p.child.take()) {
            child.kill().expect("the process is killed");
            child.wait().expect("the killed process is reaped");
        }
    }

    /// Starts the stopped processes of one role again on their ports.
    pub fn restart_role(&mut self, role: Role) {
        let stopped: Vec<(String, String)> = self
            .processes
            .iter()
            .filter(|p| (p.role == role || p.role == Role::Dev) && p.child.is_none())
            .map(|p| (p.address.clone(), p.internal.clone()))
            .collect();
        let actual = if self.cluster.is_some() { role } else { Role::Dev };
        self.processes.retain(|p| p.child.is_some());
        for (address, internal) in stopped {
            wait_until_free(&address);
            wait_until_free(&internal);
            self.launch(actual, &address, &internal);
        }
    }

    /// `kill -9` the processes of one role, then start them again on their ports.
    pub fn crash_and_restart_role(&mut self, role: Role) {
        let mut restarted = Vec::new();
        for process in self.processes.iter_mut().filter(|process| process.role == role) {
            if let Some(mut child) = process.child.take() {
                child.kill().expect("the process is killed");
                child.wait().expect("the killed process is reaped");
            }
            restarted.push((process.address.clone(), process.internal.clone()));
        }
        self.processes.retain(|process| process.role != role);
        for (address, internal) in restarted {
            wait_until_free(&address);
            wait_until_free(&internal);
            self.launch(role, &address, &internal);
        }
    }

    /// How many processes of one role were started (running or stopped).
    pub fn count(&self, role: Role) -> usize {
        self.processes.iter().filter(|p| p.role == role || p.role == Role::Dev).count()
    }

    /// The process ids of one role (for signals and memory readings).
    pub fn pids(&self, role: Role) -> Vec<u32> {
        let wanted = |process: &&Process| process.role == role || process.role == Role::Dev;
        self.processes
            .iter()
            .filter(wanted)
            .filter_map(|p| p.child.as_ref().map(Child::id))
            .collect()
    }

    /// Resident memory (KiB) of every running process: (role, pid, VmRSS).
    pub fn resident_memory(&self) -> Vec<(Role, u32, u64)> {
        let running = self.processes.iter().filter_map(|p| Some((p.role, p.child.as_ref()?.id())));
        running
            .filter_map(|(role, pid)| {
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
                let rss = status.lines().find_map(|line| line.strip_prefix("VmRSS:"))?;
                Some((role, pid, rss.trim().trim_end_matches("kB").trim().parse().ok()?))
            })
            .collect()
    }

    /// Prints every process's memory against `before` and fails when one that was running
    /// then has grown by more than `growth_kib` (restarted processes have no earlier reading).
    #[expect(clippy::print_stdout, reason = "the readings are part of the test's report")]
    pub fn assert_memory_bounded(&self, before: &[(Role, u32, u64)], growth_kib: u64) {
        for (role, pid, rss) in self.resident_memory() {
            let start = before.iter().find(|(_, earlier, _)| *earlier == pid).map(|r| r.2);
            let from = start.map_or_else(|| "restarted".to_owned(), |kib| format!("{kib} KiB"));
            println!("memory: {role:?} pid {pid}: {from} -> {rss} KiB");
            if let Some(start) = start {
                assert!(
                    rss <= start + growth_kib,
                    "{role:?} (pid {pid}) grew from {start} to {rss} KiB"
                );
            }
        }
    }

    /// Sends SIGTERM to the processes of one role and waits (at most `within`) for them to
    /// exit; true when they all exited.
    pub fn terminate(&mut self, role: Role, within: Duration) -> bool {
        for pid in self.pids(role) {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
        let deadline = Instant::now() + within;
        let mut all_exited = true;
        for process in self.processes.iter_mut().filter(|p| p.role == role || p.role == Role::Dev) {
            let Some(child) = process.child.as_mut() else { continue };
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    process.child = None;
                    break;
                }
                if Instant::now() >= deadline {
                    all_exited = false;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        all_exited
    }

    pub fn kill9(&mut self) {
        for process in &mut self.processes {
            if let Some(mut child) = process.child.take() {
                child.kill().expect("the process is killed");
                child.wait().expect("the killed process is reaped");
            }
        }
    }
}

fn wait_until_free(address: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpListener::bind(address).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}
