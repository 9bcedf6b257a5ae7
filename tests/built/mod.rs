//! The examples, built: tests that run an example as a separate process find it here.
//!
//! `cargo test` has built every example before the tests run (the build here is then a
//! no-op), but `cargo test --test NAME` has not, and would otherwise run stale binaries; the
//! first test to ask builds them, the others wait for it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The built example `name` (`target/<profile>/examples/<name>`).
pub(crate) fn example_path(name: &str) -> PathBuf {
    examples_dir().join(name)
}

/// `target/<profile>/examples`, with the examples built in the test binary's profile.
fn examples_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("path of the test binary");
        // <target>/<profile>/deps/<test>-HASH
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary in <target>/<profile>/deps");
        let target_dir = profile_dir.parent().expect("a target directory");
        let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("CARGO_TARGET_DIR", target_dir)
            .args(["build", "--quiet", "--examples"]);
        if profile_dir.file_name() == Some("release".as_ref()) {
            build.arg("--release");
        }
        let status = build.status().expect("running cargo build --examples");
        assert!(status.success(), "cargo build --examples failed");
        profile_dir.join("examples")
    })
}
