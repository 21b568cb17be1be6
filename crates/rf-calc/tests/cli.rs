//! The `rf-calc` binary end to end.
#![cfg(feature = "cli")]
// Helpers of a test binary: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rf-calc"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn preset_table_markdown_and_json() {
    let (ok, out, _) = run(&["vgg_16"]);
    assert!(ok);
    let pool5 = out.lines().find(|l| l.starts_with("pool5")).unwrap();
    let cells: Vec<&str> = pool5.split_whitespace().collect();
    assert_eq!(&cells[cells.len() - 4..], ["212", "32", "90", "15.5"]);

    let (ok, out, _) = run(&["resnet_v1_50", "--format", "markdown"]);
    assert!(
        ok && out.contains("| block4 |") && out.contains("None"),
        "{out}"
    );

    let (ok, out, _) = run(&[
        "inception_v3",
        "--input",
        "299",
        "--node",
        "Mixed_7c",
        "--format",
        "json",
    ]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["nodes"][0]["rf"][0]["size"], 1311);
    assert_eq!(v["nodes"][0]["geom"][0]["out_size"], 8);
}

#[test]
fn specs_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("net.toml");
    std::fs::write(
        &spec,
        "[[layer]]\nname = \"a\"\nop = \"conv\"\nkernel = 3\nstride = 2\npadding = \"same\"\n\
         [[layer]]\nname = \"b\"\nop = \"max_pool\"\nkernel = 3\nstride = 2\npadding = \"same\"\n",
    )
    .unwrap();
    let path = spec.to_str().unwrap();
    let (ok, out, _) = run(&["--spec", path, "--input", "225"]);
    assert!(ok, "{out}");
    let b = out.lines().find(|l| l.starts_with("b ")).unwrap();
    assert!(
        b.contains("57x57") && b.split_whitespace().any(|c| c == "7"),
        "{b}"
    );

    std::fs::write(
        &spec,
        "[[layer]]\nname = \"bad\"\nop = \"conv\"\nkernel = 3\nstride = -1\n",
    )
    .unwrap();
    let (ok, _, err) = run(&["--spec", path]);
    assert!(
        !ok && err.contains("`bad`") && err.contains("stride"),
        "{err}"
    );

    let (ok, _, err) = run(&["resnet_v1_51"]);
    assert!(!ok && err.contains("resnet_v1_50"), "{err}");

    let (ok, out, _) = run(&["fpn_resnet50", "--emit-spec", "json"]);
    assert!(ok && out.contains("\"allow_unaligned\": true"));
}

#[test]
fn draws_units() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("rf.png");
    let p = png.to_str().unwrap();
    let (ok, _, err) = run(&[
        "resnet50", "--input", "160x224", "--node", "layer2", "--draw", p, "--units", "3,4", "9,9",
    ]);
    assert!(ok, "{err}");
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (224, 160));
    let (ok, _, err) = run(&["resnet_v1_50", "--draw", p]);
    assert!(!ok && err.contains("--input"), "{err}");
}

#[test]
fn a_closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    // 250 kB of JSON, far more than a pipe holds: the binary is still writing when the reader
    // goes away after the first line (`rf-calc ... | head -1`).
    let mut child = Command::new(env!("CARGO_BIN_EXE_rf-calc"))
        .args([
            "inception_resnet_v2",
            "--all",
            "--input",
            "299",
            "--format",
            "json",
        ])
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first.trim(), "{");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(err.is_empty(), "{err}");
}
