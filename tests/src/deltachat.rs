//! Real Delta Chat clients: `deltachat-rpc-server` and `deltachat-rpc-client` from PyPI,
//! driven by the Python script in `tests/deltachat/`.
//!
//! `appliance/scripts/install-test-deps.sh` puts both, pinned, into a virtual environment
//! under the cache directory (or `$CHATMAIL_DELTACHAT_VENV` names one). The driver runs in
//! its own process group with the RPC server below it, so dropping a run ends both.

use std::{
    io::Write,
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{killpg, Signal},
    unistd::Pid,
};

use crate::process::{cache_dir, script_pin, INSTALL_HINT};

/// The virtual environment with the Delta Chat packages.
pub fn venv() -> PathBuf {
    let path = match std::env::var_os("CHATMAIL_DELTACHAT_VENV") {
        Some(path) => PathBuf::from(path),
        None => {
            let version = script_pin(
                "appliance/scripts/install-test-deps.sh",
                "DELTACHAT_VERSION",
            );
            cache_dir().join(format!("deltachat-venv-{version}"))
        }
    };
    for program in ["bin/python", "bin/deltachat-rpc-server"] {
        assert!(
            path.join(program).is_file(),
            "the Delta Chat test environment is missing {}: {INSTALL_HINT}",
            path.join(program).display()
        );
    }
    path
}

/// Runs `tests/deltachat/<script>` with `spec` as JSON on stdin and returns the JSON it
/// prints. `rpc_server` in the spec is filled in. Panics with the driver's stderr if it
/// fails; `limit` only guards against a hang.
pub async fn run_driver(
    script: &str,
    mut spec: serde_json::Value,
    limit: Duration,
) -> serde_json::Value {
    let venv = venv();
    spec["rpc_server"] = venv
        .join("bin/deltachat-rpc-server")
        .display()
        .to_string()
        .into();
    let script_path = crate::workspace::root()
        .join("tests/deltachat")
        .join(script);
    let dir = tempfile::tempdir().expect("driver directory");
    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    let mut child = Command::new(venv.join("bin/python"))
        .arg(&script_path)
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .process_group(0)
        .spawn()
        .expect("start the Delta Chat driver");
    let guard = KillGroup(child.id() as i32);
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(spec.to_string().as_bytes())
        .expect("write the driver's spec");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the driver") {
            break status;
        }
        if Instant::now() > deadline {
            drop(guard);
            let _ = child.wait();
            panic!(
                "the Delta Chat driver did not finish within {limit:?}; it printed:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(guard);
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        status.success(),
        "the Delta Chat driver failed ({status}):\n{stderr}"
    );
    // Shown with --nocapture, for when a run is slow.
    eprintln!("Delta Chat driver log:\n{stderr}");
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the driver printed no JSON ({e}):\n{stdout}\n{stderr}"))
}

/// Kills a process group when dropped.
struct KillGroup(i32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.0), Signal::SIGKILL);
    }
}
