//! The `chroom` binary: config errors are clear, and a node prints a stable PeerId.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn chroom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_chroom"))
}

fn run_with_config(config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, config).unwrap();
    let output = chroom()
        .args(["node", "--config"])
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn unknown_key_fails_naming_key_and_file() {
    let (ok, stderr) = run_with_config("[net]\nlisten_on = []\n");
    assert!(!ok);
    assert!(stderr.contains("broken.toml"), "{stderr}");
    assert!(stderr.contains("listen_on"), "{stderr}");
}

#[test]
fn bad_value_fails_naming_key_and_file() {
    let (ok, stderr) = run_with_config("[media]\nmax_links = \"many\"\n");
    assert!(!ok);
    assert!(
        stderr.contains("broken.toml") && stderr.contains("max_links"),
        "{stderr}"
    );
    let (ok, stderr) = run_with_config("[net]\nbootstrap = [\"/ip4/nope\"]\n");
    assert!(!ok);
    assert!(
        stderr.contains("broken.toml") && stderr.contains("net.bootstrap[0]"),
        "{stderr}"
    );
}

#[test]
fn missing_config_file_is_named() {
    let output = chroom()
        .args(["node", "--config", "/nonexistent/chroom.toml"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/chroom.toml"), "{stderr}");
}

#[test]
fn a_node_without_a_registry_refuses_to_start_unless_told_to_admit_everyone() {
    let (ok, stderr) = run_with_config("[log]\nfilter = \"chroom=warn\"\n");
    assert!(!ok);
    assert!(
        stderr.contains("broken.toml")
            && stderr.contains("open_access = true")
            && stderr.contains("[registry]"),
        "{stderr}"
    );
}

#[test]
fn an_account_key_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("account.key");
    // anvil's first dev account.
    std::fs::write(
        &key,
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    )
    .unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = format!(
        "[node]\nopen_access = true\n\n[identity]\naccount_key_file = {:?}\n",
        key.display().to_string()
    );
    let (ok, stderr) = run_with_config(&config);
    assert!(!ok);
    assert!(
        stderr.contains(&format!("chmod 600 {}", key.display())),
        "{stderr}"
    );
}

/// Starts `chroom node`, reads its printed PeerId and first listen address, then kills it.
fn start_and_read_peer_id(data_dir: &std::path::Path) -> (String, String) {
    let config =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../node-config/dev.toml");
    let mut child = chroom()
        .args(["node", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let peer_id = lines.next().unwrap().unwrap();
    let listen = lines.next().unwrap().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    (peer_id, listen)
}

#[test]
fn node_prints_a_peer_id_that_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (first, listen) = start_and_read_peer_id(dir.path());
    assert!(first.starts_with("peer_id 12D3KooW"), "{first}");
    assert!(listen.starts_with("listen /ip4/127.0.0.1/"), "{listen}");
    assert!(listen.contains(&first["peer_id ".len()..]), "{listen}");
    let (second, _) = start_and_read_peer_id(dir.path());
    assert_eq!(first, second);
    assert!(dir.path().join("node.key").exists());
    assert!(dir.path().join("chroom.redb").exists());
}
