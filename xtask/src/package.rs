//! `cargo xtask package [--run]`: the published crates as crates.io would see them. Packages
//! every publishable crate (`cargo package`), unpacks the `.crate` files into
//! `target/package-check/` as a workspace of their own (each crate's dependencies on the others
//! patched to the unpacked copies, nothing from this repository), builds every target there
//! (libraries, `pool`, tests, examples, benches) and runs the doc tests: a package that does
//! not build alone, a test that needs a file outside its package or a dev-dependency that is
//! not published fails here. `--run` runs every test too.

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
    // A previous run's packages of the same version would be taken for the new ones.
    let packages = root().join("target/package");
    if packages.exists() {
        std::fs::remove_dir_all(&packages).context("clearing target/package")?;
    }
    // Without cargo's own verification: it unpacks each package into a registry cache under
    // CARGO_HOME keyed by name and version, so a later run of the same version builds against
    // the first run's copies. Building every target from target/package-check does its job.
    let mut pack = cargo();
    pack.args(["package", "--no-verify"]);
    for krate in PUBLISHED {
        pack.args(["-p", krate]);
    }
    run("cargo package", pack)?;

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
            // The repository's own target directory: the dependencies built for its tests are
            // reused (the unpacked crates themselves, at other paths, are built anew), which
            // saves CI a whole second build of them.
            .env("CARGO_TARGET_DIR", root().join("target"));
        cmd
    };
    if run_tests {
        run("the unpacked packages' tests", test(&[]))
    } else {
        run(
            "building every target of the unpacked packages",
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
