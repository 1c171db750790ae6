//! `cargo xtask package [--run]`: the published crates as crates.io would see them. Packages
//! every publishable crate together (`cargo package`, which builds each package against the
//! others through a local registry), unpacks the `.crate` files into
//! `target/package-check/` as a workspace of their own (each crate's dependencies on the others
//! patched to the unpacked copies, nothing from this repository), and builds their tests and
//! runs their doc tests there: a test that needs a file outside its package, or a
//! dev-dependency that is not published, fails here. `--run` runs every test too.

use anyhow::{bail, Context, Result};

use crate::{cargo, root, run};

/// The crates published to crates.io, in dependency order.
const PUBLISHED: &[&str] = &[
    "futurepool-testkit",
    "futurepool-core",
    "futurepool-threads",
    "futurepool-procs",
    "futurepool-redis",
    "futurepool-cli",
];

pub fn package(args: &[String]) -> Result<()> {
    let run_tests = match args {
        [] => false,
        [flag] if flag == "--run" => true,
        _ => bail!("usage: cargo xtask package [--run]"),
    };
    let version = workspace_version()?;
    let mut pack = cargo();
    pack.arg("package");
    for krate in PUBLISHED {
        pack.args(["-p", krate]);
    }
    run(
        "cargo package (each package built against the others)",
        pack,
    )?;

    let check = root().join("target/package-check");
    if check.exists() {
        std::fs::remove_dir_all(&check).context("clearing target/package-check")?;
    }
    std::fs::create_dir_all(&check)?;
    let mut members = Vec::new();
    let mut patches = String::new();
    for krate in PUBLISHED {
        let dir = format!("{krate}-{version}");
        let file = root().join("target/package").join(format!("{dir}.crate"));
        let status = std::process::Command::new("tar")
            .arg("xzf")
            .arg(&file)
            .current_dir(&check)
            .status()
            .context("running tar")?;
        if !status.success() {
            bail!("cannot unpack {}", file.display());
        }
        members.push(format!("{dir:?}"));
        patches.push_str(&format!("{krate} = {{ path = {dir:?} }}\n"));
    }
    std::fs::write(
        check.join("Cargo.toml"),
        format!(
            "# The unpacked packages of `cargo xtask package`, as a workspace of their own.\n\
             [workspace]\nresolver = \"2\"\nmembers = [{}]\n\n[patch.crates-io]\n{patches}",
            members.join(", ")
        ),
    )?;
    // The same dependency versions as the repository's lockfile.
    std::fs::copy(root().join("Cargo.lock"), check.join("Cargo.lock"))?;
    let test = |extra: &[&str]| {
        let mut cmd = cargo();
        cmd.current_dir(&check)
            .args(["test", "--workspace"])
            .args(extra)
            .env(
                "CARGO_TARGET_DIR",
                root().join("target/package-check-target"),
            );
        cmd
    };
    if run_tests {
        run("the unpacked packages' tests", test(&[]))
    } else {
        run(
            "building the unpacked packages' tests",
            test(&["--all-targets", "--no-run"]),
        )?;
        run("the unpacked packages' doc tests", test(&["--doc"]))
    }
}

/// The workspace's `version` (every published crate has it).
fn workspace_version() -> Result<String> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml"))?;
    version_in(&manifest).context("no [workspace.package] version in Cargo.toml")
}

fn version_in(manifest: &str) -> Option<String> {
    let section = manifest.split("[workspace.package]").nth(1)?;
    section
        .lines()
        .take_while(|l| !l.starts_with('['))
        .find_map(|l| {
            let value = l.strip_prefix("version")?.trim_start().strip_prefix('=')?;
            Some(value.trim().trim_matches('"').to_string())
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_version_is_read_from_workspace_package() {
        let manifest = "[workspace]\nmembers = []\n\n[workspace.package]\nversion = \"0.3.1\"\n\
                        edition = \"2021\"\n\n[workspace.dependencies]\nversion = \"9\"\n";
        assert_eq!(super::version_in(manifest).as_deref(), Some("0.3.1"));
        assert_eq!(super::version_in("[package]\nversion = \"1.0.0\"\n"), None);
    }
}
