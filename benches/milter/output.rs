//! Where the chart and the tables go, and writing them.

use std::path::{Path, PathBuf};

use super::Result;

/// `BENCH_OUT`, else `benches/results` for a full run (the committed chart and tables), else
/// `target/bench-results` for a quick one, so a smoke run leaves the repository alone.
pub(super) fn dir(quick: bool) -> PathBuf {
    if let Some(dir) = std::env::var_os("BENCH_OUT") {
        return PathBuf::from(dir);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    if quick {
        // The bench runs as <target>/release/deps/milter-HASH.
        let exe = std::env::current_exe().unwrap_or_default();
        exe.ancestors()
            .nth(3)
            .map_or_else(|| manifest.join("target"), Path::to_path_buf)
            .join("bench-results")
    } else {
        manifest.join("benches").join("results")
    }
}

/// Writes `chart.svg` and `results.md` (the tables as printed) into `dir`.
pub(super) fn write(dir: &Path, tables: &str, svg: &str) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let chart = dir.join("chart.svg");
    std::fs::write(&chart, svg)?;
    let markdown = dir.join("results.md");
    std::fs::write(
        &markdown,
        format!(
            "# Benchmark results\n\nWritten by `cargo bench --bench milter` with the chart beside it.\n\n![Messages per second per workload and memory per idle connection](chart.svg)\n{tables}"
        ),
    )?;
    eprintln!(
        "bench: wrote {} and {}",
        chart.display(),
        markdown.display()
    );
    Ok(())
}
