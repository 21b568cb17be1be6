//! The `det-eval` binary: prints pycocotools' 12 summary lines for valid files, names the file
//! and position of a malformed one, and exits non-zero.

// A test binary: a panic is its failure report, helpers outside #[test] included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use det_core::coco::write_detections;
use det_core::synth::{coco_like, SynthSpec};
use det_core::{evaluate, CocoParams};

#[test]
fn det_eval_prints_the_summary_and_reports_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec {
        images: 40,
        categories: 4,
        ground_truth: 200,
        detections_per_image: 20,
        seed: 5,
    };
    let (gt, dt) = coco_like(&spec);
    let (gp, dp, jp) = (
        dir.path().join("gt.json"),
        dir.path().join("results.json"),
        dir.path().join("out.json"),
    );
    gt.write(&gp).unwrap();
    write_detections(&dp, &dt).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_det-eval"))
        .args([
            "--gt".as_ref(),
            gp.as_os_str(),
            "--dt".as_ref(),
            dp.as_os_str(),
        ])
        .args(["--json".as_ref(), jp.as_os_str()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 12);
    let expected = evaluate(&gt, &dt, &CocoParams::default()).unwrap();
    let first = format!(
        " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = {:.3}",
        expected.summary.stats[0]
    );
    assert_eq!(text.lines().next().unwrap(), first);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&jp).unwrap()).unwrap();
    assert_eq!(
        json["stats"][8].as_f64().unwrap(),
        expected.summary.stats[8]
    );

    std::fs::write(&dp, "[{\"image_id\": 1,\n \"bbox\": oops}]").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_det-eval"))
        .args([
            "--gt".as_ref(),
            gp.as_os_str(),
            "--dt".as_ref(),
            dp.as_os_str(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("results.json:2:"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_det-eval"))
        .arg("--gt")
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// `det-eval ... | head -1`: a reader that takes the first line and goes away, and one that
/// closes the pipe before anything is written, both leave det-eval exiting 0 without a panic
/// ("failed printing to stdout: Broken pipe").
#[test]
fn det_eval_exits_quietly_when_its_output_pipe_closes() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec {
        images: 200,
        categories: 5,
        ground_truth: 1000,
        detections_per_image: 40,
        seed: 6,
    };
    let (gt, dt) = coco_like(&spec);
    let (gp, dp) = (dir.path().join("gt.json"), dir.path().join("results.json"));
    gt.write(&gp).unwrap();
    write_detections(&dp, &dt).unwrap();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_det-eval"))
            .args([
                "--gt".as_ref(),
                gp.as_os_str(),
                "--dt".as_ref(),
                dp.as_os_str(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Like `head -1`: read one line, then close the pipe.
    let mut child = spawn();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(
        first.starts_with(" Average Precision  (AP) @[ IoU=0.50:0.95"),
        "{first}"
    );
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
    // The pipe closed before det-eval has read its files: its first write meets EPIPE.
    let mut child = spawn();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(err.contains("evaluated in"), "reached the summary: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
}
