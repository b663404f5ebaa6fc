//! `mydht client -c ring`: the agreed ring as a table (one member a line)
//! and, with `--json`, the JSON `GET /v1/ring` serves; two members of one
//! ring report the same version.

mod common;

use common::*;

fn ring_json(node: &NodeProc) -> serde_json::Value {
    let out = client(&node.port_arg(), &["-c", "ring", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

#[test]
fn ring_prints_the_agreed_ring_as_a_table_and_as_json() {
    let dir = temp_dir();
    let a = NodeProc::start(0, &dir.path().join("a"), &[]);
    let b = NodeProc::start(0, &dir.path().join("b"), &["-s", &a.name]);
    wait_until("both nodes at one ring version with 2 members", || {
        let (x, y) = (ring_json(&a), ring_json(&b));
        x["version"] == y["version"] && x["members"].as_array().is_some_and(|m| m.len() == 2)
    });

    let report = ring_json(&a);
    assert_eq!(report["replicas"], 3);
    assert_eq!(report["removed"], serde_json::json!([]));
    let members = report["members"].as_array().expect("members");
    // Listed by name.
    let mut names = [&a.name, &b.name];
    names.sort();
    assert_eq!(members.len(), 2);
    for (m, name) in members.iter().zip(names) {
        assert_eq!(m["node"], name.as_str());
        assert_eq!(m["state"], "up");
        assert_eq!(m["alive"], true);
    }
    let version = report["version"].as_str().expect("a version").to_string();
    assert_eq!(version.len(), 16, "{version}");

    let table = client(&a.port_arg(), &["-c", "ring"]);
    assert!(table.status.success(), "{}", stderr(&table));
    let text = stdout(&table);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        4,
        "a title, a header and a line per member: {text}"
    );
    assert!(lines[0].contains(&version), "{text}");
    for name in [&a.name, &b.name] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(name.as_str()))
            .unwrap_or_else(|| panic!("{name} listed: {text}"));
        assert!(line.contains(" up ") && line.contains(" yes "), "{line}");
    }

    // The status page shows the version too.
    assert!(status_page(&a.name).contains(&version));
}

#[test]
fn ring_from_a_node_that_does_not_answer_exits_3() {
    let out = client("1", &["-c", "ring"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot read the ring"),
        "{}",
        stderr(&out)
    );
}
