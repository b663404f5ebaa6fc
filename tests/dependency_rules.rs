//! Checks the workspace's shape rules from DESIGN.md against the real
//! dependency graph that cargo resolves: dependencies point down only, the
//! ring stays free of tokio and I/O crates, the client and the cluster plane
//! compile no storage engine or web framework, and every version lives once
//! in `[workspace.dependencies]`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

struct Graph {
    /// package id -> (name, normal dependencies' package ids)
    nodes: BTreeMap<String, (String, Vec<String>)>,
    by_name: BTreeMap<String, String>,
}

/// The host's target triple: the graph is resolved for it only, so no crate
/// for another platform has to be downloaded.
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc names its host")
        .to_string()
}

fn graph() -> Graph {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
        ])
        .arg(host_triple())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let mut names = BTreeMap::new();
    for p in meta["packages"].as_array().expect("packages") {
        names.insert(
            p["id"].as_str().expect("id").to_string(),
            p["name"].as_str().expect("name").to_string(),
        );
    }
    let mut nodes = BTreeMap::new();
    let mut by_name = BTreeMap::new();
    for n in meta["resolve"]["nodes"].as_array().expect("resolve") {
        let id = n["id"].as_str().expect("id").to_string();
        let deps = n["deps"]
            .as_array()
            .expect("deps")
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .expect("dep_kinds")
                    .iter()
                    .any(|k| k["kind"].is_null())
            })
            .map(|d| d["pkg"].as_str().expect("pkg").to_string())
            .collect();
        let name = names[&id].clone();
        if id.starts_with("path+") {
            by_name.insert(name.clone(), id.clone());
        }
        nodes.insert(id, (name, deps));
    }
    Graph { nodes, by_name }
}

impl Graph {
    /// Names of every package `crate_name` pulls in through normal
    /// dependencies, itself excluded.
    fn closure(&self, crate_name: &str) -> BTreeSet<String> {
        let start = &self.by_name[crate_name];
        let mut seen = BTreeSet::new();
        let mut stack = vec![start.clone()];
        while let Some(id) = stack.pop() {
            for d in &self.nodes[&id].1 {
                if seen.insert(d.clone()) {
                    stack.push(d.clone());
                }
            }
        }
        seen.iter().map(|id| self.nodes[id].0.clone()).collect()
    }

    /// The workspace crates `crate_name` depends on directly.
    fn direct_mydht(&self, crate_name: &str) -> BTreeSet<String> {
        self.nodes[&self.by_name[crate_name]]
            .1
            .iter()
            .map(|id| self.nodes[id].0.clone())
            .filter(|n| n.starts_with("mydht"))
            .collect()
    }
}

#[test]
fn dependencies_point_down_only() {
    let g = graph();
    let allowed: &[(&str, &[&str])] = &[
        ("mydht-ring", &[]),
        ("mydht-proto", &["mydht-ring"]),
        ("mydht-store", &["mydht-ring", "mydht-proto"]),
        ("mydht-client", &["mydht-ring", "mydht-proto"]),
        // Who is in the cluster and how to reach them: never the store, so
        // nothing in it can name a key's data or the data plane above it.
        ("mydht-cluster", &["mydht-ring", "mydht-proto"]),
        (
            "mydht-node",
            &["mydht-ring", "mydht-proto", "mydht-store", "mydht-cluster"],
        ),
        (
            "mydht",
            &["mydht-node", "mydht-client", "mydht-ring", "mydht-proto"],
        ),
    ];
    for (krate, ok) in allowed {
        let deps = g.direct_mydht(krate);
        let bad: Vec<_> = deps.iter().filter(|d| !ok.contains(&d.as_str())).collect();
        assert!(
            bad.is_empty(),
            "{krate} depends on {bad:?}, against DESIGN.md"
        );
    }
}

#[test]
fn ring_is_pure() {
    let deps = graph().closure("mydht-ring");
    for forbidden in ["tokio", "tokio-util", "mio", "futures", "bytes"] {
        assert!(
            !deps.contains(forbidden),
            "mydht-ring pulls in {forbidden}: {deps:?}"
        );
    }
}

#[test]
fn client_compiles_no_storage_or_web_framework() {
    let deps = graph().closure("mydht-client");
    for forbidden in [
        "mydht-store",
        "mydht-node",
        "fjall",
        "lsm-tree",
        "redb",
        "axum",
        "hyper",
        "maud",
    ] {
        assert!(
            !deps.contains(forbidden),
            "mydht-client pulls in {forbidden}"
        );
    }
}

#[test]
fn cluster_compiles_no_storage_or_web_framework() {
    let deps = graph().closure("mydht-cluster");
    for forbidden in [
        "mydht-store",
        "mydht-node",
        "fjall",
        "lsm-tree",
        "axum",
        "hyper",
    ] {
        assert!(
            !deps.contains(forbidden),
            "mydht-cluster pulls in {forbidden}"
        );
    }
}

#[test]
fn versions_live_in_the_workspace_only() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut manifests = vec![];
    for entry in std::fs::read_dir(root.join("crates")).expect("crates/") {
        manifests.push(entry.expect("entry").path().join("Cargo.toml"));
    }
    assert!(manifests.len() >= 7, "expected the seven crates");
    for path in manifests {
        let text = std::fs::read_to_string(&path).expect("manifest readable");
        let mut in_deps = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                in_deps = line.ends_with("dependencies]");
                continue;
            }
            if !in_deps || line.is_empty() || line.starts_with('#') {
                continue;
            }
            assert!(
                line.contains(".workspace = true") || line.contains("workspace = true"),
                "{}: `{line}` sets its own version; put it in [workspace.dependencies]",
                path.display()
            );
        }
    }
}
