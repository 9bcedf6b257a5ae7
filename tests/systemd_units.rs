//! The systemd units in `contrib/systemd/` load cleanly: `systemd-analyze verify` (Debian
//! package `systemd`, which `scripts/test` installs) reports nothing about them. Without
//! `systemd-analyze` the test says so and passes, as nothing can be checked.

use std::path::{Path, PathBuf};
use std::process::Command;

const UNITS: [&str; 2] = ["my-filter.socket", "my-filter.service"];

/// A fresh directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn contrib() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd")
}

#[test]
fn the_service_serves_the_socket_systemd_passes() {
    let service = std::fs::read_to_string(contrib().join("my-filter.service")).unwrap();
    assert!(
        service
            .lines()
            .any(|l| l.starts_with("ExecStart=") && l.ends_with(" systemd")),
        "ExecStart takes the `systemd` socket spec"
    );
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(
        readme.contains("contrib/systemd/my-filter.service"),
        "the README shows the unit"
    );
}

#[test]
fn systemd_analyze_verify_finds_nothing() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze not installed: the units are not verified");
        return;
    }
    let dir =
        TempDir(std::env::temp_dir().join(format!("async-milter-units-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    // verify checks that ExecStart names an executable: any will do.
    let exe = std::env::current_exe().unwrap();
    let mut paths = Vec::new();
    for unit in UNITS {
        let text = std::fs::read_to_string(contrib().join(unit)).unwrap();
        let text = text.replace("/usr/local/bin/my-filter", &exe.display().to_string());
        let path = dir.0.join(unit);
        std::fs::write(&path, text).unwrap();
        paths.push(path);
    }
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&paths)
        .output()
        .expect("running systemd-analyze verify");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // It exits 0 on unknown keys and bad values, so what it prints is the verdict.
    let about_ours: Vec<&str> = report
        .lines()
        .filter(|line| line.contains("my-filter"))
        .collect();
    assert!(
        output.status.success() && about_ours.is_empty(),
        "systemd-analyze verify:\n{report}"
    );
}
