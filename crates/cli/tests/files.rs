//! Files through the real binary: a 50 MiB random file put through one node
//! and read back byte-identical from another.

mod common;

use common::*;

#[test]
fn a_50_mib_file_goes_through_one_node_and_comes_back_from_another() {
    let dir = temp_dir();
    let a = NodeProc::start(0, &dir.path().join("a"), &[]);
    let b = NodeProc::start(0, &dir.path().join("b"), &["-s", &a.name]);
    let c = NodeProc::start(0, &dir.path().join("c"), &["-s", &a.name]);
    wait_until("three members", || ring_size(&a.name) == 3);
    let data = random_bytes(50 << 20, 0x5eed);
    let src = dir.path().join("random.bin");
    std::fs::write(&src, &data).expect("write");
    let o = client(
        &a.port_arg(),
        &[
            "-c",
            "put",
            "-k",
            "random.bin",
            "-f",
            src.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(stdout(&o), "PUT OK random.bin\n", "{}", stderr(&o));
    for node in [&b, &c] {
        let dst = dir.path().join(format!("from-{}.bin", node.port));
        let o = mydht(&[
            "get",
            "random.bin",
            "-o",
            dst.to_str().expect("utf-8"),
            "-h",
            "127.0.0.1",
            "-p",
            &node.port_arg(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            std::fs::read(&dst).expect("read") == data,
            "bytes differ via {}",
            node.name
        );
    }
    // Streamed to stdout (not a terminal) it is byte-identical too.
    let o = mydht(&["get", "random.bin", "-h", "127.0.0.1", "-p", &c.port_arg()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout == data, "stdout differs");
}
