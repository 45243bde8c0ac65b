//! The server crate's own dependencies carry no HTTP client, no plotting library and no progress
//! bar: those are the tools' (`tools/`, the `recloop-tools` crate, which also builds the
//! `recloop` binary). Read from `cargo tree` over the locked dependencies, without the network;
//! `cargo test --test dependencies` runs it alone, and the README's `cargo test` (CI) with the rest.

use std::{collections::BTreeSet, process::Command};

/// What the tools bring and the server must never pull in, at any depth.
const TOOLS_ONLY: &[&str] = &["reqwest", "plotters", "indicatif"];

/// Every package in `package`'s normal (not dev, not build) dependency tree, by name, for the
/// platform the tests run on.
fn normal_dependencies(package: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--package",
            package,
            "--edges",
            "normal",
            "--prefix",
            "none",
        ])
        .args(["--format", "{p}", "--locked", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_server_depends_on_no_http_client_plotting_or_progress_bars() {
    let server = normal_dependencies("recloop");
    // The tree was read at all: the server itself and what it is built on are in it.
    for present in ["recloop", "axum", "sqlx"] {
        assert!(
            server.contains(present),
            "{present} missing from {server:?}"
        );
    }
    let found: Vec<&&str> = TOOLS_ONLY
        .iter()
        .filter(|name| server.contains(**name))
        .collect();
    assert!(
        found.is_empty(),
        "the recloop crate depends on {found:?}: they belong to tools/ \
         (`cargo tree -p recloop -e normal -i <name>` shows the path)"
    );
}

#[test]
fn the_check_sees_the_tools_dependencies() {
    // The same reading finds them where they are, so the test above cannot pass by missing them.
    let tools = normal_dependencies("recloop-tools");
    for name in TOOLS_ONLY {
        assert!(tools.contains(*name), "{name} not found in recloop-tools");
    }
}
