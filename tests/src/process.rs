//! Nodes run as separate `chroom` processes, for tests that crash one for real: `kill -9` takes
//! the node's sockets away mid-stream without a goodbye, which dropping an in-process
//! [`RunningNode`](chroom_node::RunningNode) (a graceful shutdown) does not.
//!
//! The processes run the `chroom` binary that the last `cargo build` put in the target
//! directory: `cargo nextest run --workspace` builds it, `cargo nextest run -p chroom-tests`
//! does not (build it first with `cargo build -p chroom-node`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use chroom_net::PeerId;
use libp2p::identity::Keypair;

/// The node key file `chroom` reads from its data dir (32 raw ed25519 secret bytes, mode 0600).
const NODE_KEY_FILE: &str = "node.key";
/// Lines of a process's log shown when a test fails.
const LOG_TAIL_LINES: usize = 40;

/// A `chroom node` process with its state, config and log in one directory. Dropping it kills
/// the process (so a failing test leaves none behind) and, if the test is failing, prints the
/// tail of its log.
#[derive(Debug)]
pub struct NodeProcess {
    child: Child,
    peer_id: PeerId,
    dir: PathBuf,
    /// How the process ended, once it has been waited for.
    exited: Option<ExitStatus>,
}

impl NodeProcess {
    /// Starts `chroom node` on `config` (TOML, as in `node-config/`; its `[node] data_dir` is
    /// replaced by `dir`). The node's key is made here, so its PeerId is known at once. The
    /// config goes to `<dir>/node.toml`, stdout and stderr to `<dir>/node.log`.
    pub fn spawn(dir: &Path, config: &str) -> Self {
        Self::spawn_in(dir, config, None, &["node"])
    }

    /// Like [`Self::spawn`], running `chroom <command…>` (`node`, `publish --room …`,
    /// `record --room …`) inside the network namespace `netns`, if given (a lab host).
    pub fn spawn_in(dir: &Path, config: &str, netns: Option<&str>, command: &[&str]) -> Self {
        std::fs::create_dir_all(dir).expect("creating the node's dir");
        let keypair = Keypair::generate_ed25519();
        let secret = keypair
            .clone()
            .try_into_ed25519()
            .expect("a generated ed25519 key is ed25519")
            .secret();
        // The node refuses a key file others can read.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.join(NODE_KEY_FILE))
            .and_then(|mut file| file.write_all(secret.as_ref()))
            .expect("writing the node key");
        let config_path = dir.join("node.toml");
        std::fs::write(&config_path, config).expect("writing the node config");
        let log = File::create(dir.join("node.log")).expect("creating the node log");
        let mut launch = match netns {
            Some(netns) => {
                let mut launch = Command::new("ip");
                launch.args(["netns", "exec", netns]).arg(chroom_binary());
                launch
            }
            None => Command::new(chroom_binary()),
        };
        let child = launch
            .args(command)
            .arg("--config")
            .arg(&config_path)
            .arg("--data-dir")
            .arg(dir)
            // Plain text in the log file, not terminal colours.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log file handle"))
            .stderr(log)
            .spawn()
            .expect("starting chroom");
        Self {
            child,
            peer_id: keypair.public().to_peer_id(),
            dir: dir.to_path_buf(),
            exited: None,
        }
    }

    /// Waits until the node has started (it prints its `peer_id` line once it listens and has
    /// joined the rooms its config names). Panics, with the log's tail, if the process exits
    /// first or `timeout` passes.
    pub async fn started(&mut self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exited() {
                panic!(
                    "chroom in {} exited ({status}) before it started:\n{}",
                    self.dir.display(),
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            if let Some(printed) = log.lines().find_map(|l| l.strip_prefix("peer_id ")) {
                assert_eq!(
                    printed,
                    self.peer_id.to_base58(),
                    "chroom did not use the node key written for it"
                );
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chroom in {} did not start within {timeout:?}:\n{}",
                self.dir.display(),
                self.log_tail(LOG_TAIL_LINES)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the process to end by itself (a recorder that got its frames), for at most
    /// `timeout`; panics, with the log's tail, if it does not or fails.
    pub async fn finished(&mut self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exited() {
                assert!(
                    status.success(),
                    "chroom in {} failed ({status}):\n{}",
                    self.dir.display(),
                    self.log_tail(LOG_TAIL_LINES)
                );
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chroom in {} did not finish within {timeout:?}:\n{}",
                self.dir.display(),
                self.log_tail(LOG_TAIL_LINES)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `kill -9`: the process ends at once, without closing anything itself (the kernel closes
    /// its sockets). Returns once it is gone.
    pub fn kill_9(&mut self) {
        if self.try_exited().is_some() {
            panic!(
                "chroom in {} had already exited:\n{}",
                self.dir.display(),
                self.log_tail(LOG_TAIL_LINES)
            );
        }
        // On Unix, `Child::kill` sends SIGKILL.
        self.child.kill().expect("sending SIGKILL");
        self.exited = Some(self.child.wait().expect("waiting for the killed process"));
    }

    /// The process id (of `chroom` itself: `ip netns exec` execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where the node serves `/metrics` (its config has `[metrics]`; it prints the address
    /// after its `peer_id` line). Panics, with the log's tail, if it printed none.
    pub fn metrics_addr(&self) -> std::net::SocketAddr {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        log.lines()
            .find_map(|line| {
                line.strip_prefix("metrics http://")?
                    .strip_suffix("/metrics")
            })
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "chroom in {} printed no metrics address:\n{}",
                    self.dir.display(),
                    self.log_tail(LOG_TAIL_LINES)
                )
            })
    }

    /// The node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The node's directory (data dir, config and log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file the process's stdout and stderr go to.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("node.log")
    }

    /// The last `lines` lines of the process's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// How the process ended, if it has.
    fn try_exited(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("checking the process");
        }
        self.exited
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let status = match self.try_exited() {
            Some(status) => status.to_string(),
            None => {
                // Errors here mean it is already gone; a Drop must not panic.
                let _ = self.child.kill();
                let _ = self.child.wait();
                "running".to_owned()
            }
        };
        if std::thread::panicking() {
            eprintln!(
                "--- chroom {} ({status}), last lines of {}:\n{}\n---",
                self.peer_id,
                self.log_path().display(),
                self.log_tail(LOG_TAIL_LINES)
            );
        }
    }
}

/// The `chroom` binary in the target directory this test was built into. Cargo gives
/// `CARGO_BIN_EXE_<name>` only to the binary's own package, so it is found next to the test
/// executable's directory (`target/<profile>/deps/<test>` → `target/<profile>/chroom`).
pub fn chroom_binary() -> PathBuf {
    let test_exe = std::env::current_exe().expect("the test executable's path");
    test_exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("chroom"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no chroom binary next to {}: build the workspace first: cargo build -p chroom-node",
                test_exe.display()
            )
        })
}
